"""BigEarthNet v2 (reBEN) loader on a small copy of the real layout; the labels are made up, the imagery is real."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from spectralgpt_hf.data import BIGEARTHNET_43_TO_19, BIGEARTHNET_CLASSES, load_bigearthnet
from spectralgpt_hf.image_processing_spectralgpt import (
    BIGEARTHNET_MEAN,
    BIGEARTHNET_STD,
    SpectralGPTImageProcessor,
)

from decoding_checks import read_layers

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_bigearthnet_labels_split_and_bands(bigearthnet_root):
    root, patch = bigearthnet_root
    processor = SpectralGPTImageProcessor.for_bigearthnet(do_resize=False, do_center_crop=False)
    train = load_bigearthnet(root, image_processor=processor)
    validation = load_bigearthnet(root, split="validation")
    assert (len(train), len(validation)) == (2, 1)

    # Indices in the 19-class nomenclature: 0 Urban fabric, 2 Arable land, 9 Coniferous forest, 13 Transitional
    # woodland/shrub, 17 Inland waters, 18 Marine waters. Road and rail networks is dropped from the 19 classes.
    expected = [{2, 9, 13}, {0, 18}]
    for example, classes in zip((train[0], train[1]), expected):
        assert example["labels"].dtype == torch.float32 and example["labels"].shape == (19,)
        assert set(torch.nonzero(example["labels"]).flatten().tolist()) == classes
        assert example["labels"].sum() == len(classes)
    assert set(torch.nonzero(validation[0]["labels"]).flatten().tolist()) == {17, 18}
    assert validation[0]["pixel_values"].shape == (12, 128, 128)

    # B02 (10 m, channel 1) is read unchanged, then SentinelNormalize'd.
    pixel_values = train[0]["pixel_values"]
    assert pixel_values.shape == (12, 120, 120) and pixel_values.dtype == torch.float32
    b02 = read_layers(next(patch.glob("*_B02.tif")))[0].astype(np.float64)
    low = BIGEARTHNET_MEAN[1] - 2 * BIGEARTHNET_STD[1]
    expected_b02 = np.floor(np.clip((b02 - low) / (4 * BIGEARTHNET_STD[1]) * 255, 0, 255)) / 255
    np.testing.assert_allclose(pixel_values[1].numpy(), expected_b02, atol=1e-6)


def test_bigearthnet_grouping_covers_the_nomenclatures():
    # BigEarthNet v1 has 43 CORINE classes; the 19-class nomenclature drops 11 of them and keeps every group.
    assert len(BIGEARTHNET_43_TO_19) == 43 and len(BIGEARTHNET_CLASSES) == 19
    assert sum(group is None for group in BIGEARTHNET_43_TO_19.values()) == 11
    assert set(BIGEARTHNET_43_TO_19.values()) - {None} == set(BIGEARTHNET_CLASSES)


def test_bigearthnet_errors(bigearthnet_root, tmp_path):
    root, _ = bigearthnet_root
    with pytest.raises(ValueError, match=r"'test'.*\['train', 'validation'\]"):
        load_bigearthnet(root, split="test")
    with pytest.raises(FileNotFoundError, match="metadata.parquet"):
        load_bigearthnet(tmp_path)
    pq.write_table(pa.table({"patch_id": ["x"], "labels": [["Pastures"]]}), tmp_path / "metadata.parquet")
    with pytest.raises(ValueError, match="needs the columns"):
        load_bigearthnet(tmp_path)
    missing_patch = pa.table({"patch_id": ["S2A_T1_1_2"], "labels": [["Pastures"]], "split": ["train"]})
    pq.write_table(missing_patch, tmp_path / "m.parquet")
    with pytest.raises(FileNotFoundError, match=r"BigEarthNet-S2/<tile>/<patch_id>"):
        load_bigearthnet(tmp_path, metadata_path=tmp_path / "m.parquet")
    metadata = pq.read_table(root / "metadata.parquet").to_pylist()[:1]
    metadata[0]["labels"] = ["Lava"]
    pq.write_table(pa.Table.from_pylist(metadata), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="Unknown BigEarthNet label 'Lava'"):
        load_bigearthnet(root, metadata_path=tmp_path / "bad.parquet")
