"""EuroSAT-MS loader on a small copy of the real layout (the real samples of ../shared/data)."""

import shutil

import numpy as np
import pytest
import torch

from spectralgpt_hf.data import load_eurosat
from spectralgpt_hf.image_processing_spectralgpt import EUROSAT_MEAN, EUROSAT_STD, SpectralGPTImageProcessor

from decoding_checks import read_layers

# Layer (1-based) of each SpectralGPT input band in the EuroSAT-MS tifs, from the data README: B01..B09, B10, B11,
# B12, B8A. SpectralGPT order: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12.
EUROSAT_LAYERS_IN_MODEL_ORDER = [1, 2, 3, 4, 5, 6, 7, 8, 13, 9, 11, 12]
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_eurosat_reads_class_folders_and_bands_by_name(eurosat_root):
    processor = SpectralGPTImageProcessor.for_eurosat(do_resize=False, do_center_crop=False)
    dataset = load_eurosat(eurosat_root, image_processor=processor)

    assert len(dataset) == 3
    # AnnualCrop, Pasture and SeaLake are classes 0, 5 and 9 of EuroSAT's alphabetical class list.
    assert list(dataset.with_format(None)["labels"]) == [0, 5, 9]
    assert dataset.features["labels"].names[9] == "SeaLake"
    example = dataset[2]
    assert example["pixel_values"].dtype == torch.float32 and example["pixel_values"].shape == (12, 64, 64)
    assert example["labels"].dtype == torch.int64 and int(example["labels"]) == 9

    raw = read_layers(eurosat_root / "EuroSAT_MS" / "SeaLake" / "SeaLake_3000.tif").astype(np.float64)
    for channel, layer in enumerate(EUROSAT_LAYERS_IN_MODEL_ORDER):
        expected = (raw[layer - 1] - EUROSAT_MEAN[channel]) / EUROSAT_STD[channel]
        np.testing.assert_allclose(example["pixel_values"][channel].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_eurosat_default_processor_follows_the_recipe(eurosat_root):
    # Evaluation: Resize(146) + CenterCrop(128). Training: no resize before the augmentation.
    assert load_eurosat(eurosat_root)[0]["pixel_values"].shape == (12, 128, 128)
    assert load_eurosat(eurosat_root, augmentation=lambda image: image)[0]["pixel_values"].shape == (12, 64, 64)


def test_eurosat_split_file(eurosat_root):
    dataset = load_eurosat(eurosat_root, split="train")
    sources = dataset.with_format(None)["source"]
    assert [source.rsplit("/", 1)[-1] for source in sources] == ["AnnualCrop_1.tif", "SeaLake_3000.tif"]
    with pytest.raises(FileNotFoundError, match="eurosat-val.txt"):
        load_eurosat(eurosat_root, split="val")


def test_eurosat_errors_name_expected_and_found(eurosat_root, tmp_path):
    (tmp_path / "README.txt").write_text("not EuroSAT")
    with pytest.raises(FileNotFoundError, match=r"AnnualCrop.*Found in .*: README\.txt"):
        load_eurosat(tmp_path)
    (tmp_path / "eurosat-test.txt").write_text("Forest_7.jpg\n")
    shutil.copytree(eurosat_root / "EuroSAT_MS" / "Pasture", tmp_path / "Pasture")
    with pytest.raises(ValueError, match="Forest_7"):
        load_eurosat(tmp_path, split="test")
