"""SegMunich (TUM_128) loader on a small copy of the real layout; the labels are made up, the imagery is real."""

import numpy as np
import pytest
import torch

from spectralgpt_hf.data import RandomFlipsAndRotations, load_segmunich

from decoding_checks import dihedral_images, min_max, read_layers
from layouts import SEGMUNICH_CODES

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


# Spec 10.3: 21->1, 22->2, 23->3, 31->4, 32->6, 33->7, 41->8, 13->9, 14->10; 0, 5, 11, 12 kept.
SEGMUNICH_CLASS_IDS = np.array([0, 5, 11, 12, 9, 10, 1, 2, 3, 4, 6, 7, 8])


def test_segmunich_channels_and_label_remap(segmunich_root):
    train = load_segmunich(segmunich_root)
    test = load_segmunich(segmunich_root, split="test")
    assert (len(train), len(test)) == (2, 1)
    assert list(train.with_format(None)["name"]) == ["1", "10"]

    example = train[1]
    assert example["pixel_values"].shape == (12, 128, 128) and example["pixel_values"].dtype == torch.float32
    assert example["labels"].shape == (128, 128) and example["labels"].dtype == torch.int64

    raw = read_layers(segmunich_root / "train" / "img" / "10.tif").astype(np.float32)
    band_mean = raw.mean(axis=0)
    expected = min_max(np.concatenate([raw, band_mean[None], band_mean[None]]), eps=1e-9)
    np.testing.assert_allclose(example["pixel_values"].numpy(), expected, atol=1e-5)

    codes = read_layers(segmunich_root / "train" / "label" / "10.tif")[0]
    expected_labels = SEGMUNICH_CLASS_IDS[np.searchsorted(SEGMUNICH_CODES, codes)]
    np.testing.assert_array_equal(example["labels"].numpy(), expected_labels)


def test_segmunich_augmentation_moves_image_and_mask_together(segmunich_root):
    plain = load_segmunich(segmunich_root)[0]
    for seed in range(4):
        augmented = load_segmunich(segmunich_root, augmentation=RandomFlipsAndRotations(seed=seed))[0]
        candidates = dihedral_images(plain["labels"].numpy())
        matches = [index for index, labels in enumerate(candidates) if np.array_equal(labels, augmented["labels"])]
        assert len(matches) == 1
        image_candidates = [np.stack(dihedral_images(band)) for band in plain["pixel_values"].numpy()]
        expected_image = np.stack([bands[matches[0]] for bands in image_candidates])
        np.testing.assert_array_equal(augmented["pixel_values"].numpy(), expected_image)


def test_segmunich_wrong_layout(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match=r"train/img.*Found in .*: images/"):
        load_segmunich(tmp_path)
