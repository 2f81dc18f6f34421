"""OSCD loader on a small copy of the real layout; the change maps are made up, the imagery is real."""

import math
import shutil

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window
from transformers import default_data_collator

from spectralgpt_hf.data import load_oscd

from decoding_checks import count_reads, min_max, read_layers
from layouts import OSCD_IMAGES, OSCD_TRAIN_LABELS

MODEL_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def original_patch_count(height, width, patch_size, stride):
    # The original ChangeDetectionDataset: ceil((size - patch + 1) / stride) patches per axis.
    return math.ceil((height - patch_size + 1) / stride) * math.ceil((width - patch_size + 1) / stride)


@pytest.mark.parametrize("patch_size, stride", [(128, 63), (64, 50)])
def test_oscd_patch_tiling(oscd_root, patch_size, stride):
    dataset = load_oscd(oscd_root, patch_size=patch_size, stride=stride)
    expected = original_patch_count(264, 264, patch_size, stride) + original_patch_count(190, 230, patch_size, stride)
    assert len(dataset) == expected
    stored = dataset.with_format(None)
    assert list(stored["city"]).count("city_b") == original_patch_count(190, 230, patch_size, stride)
    assert max(stored["row"]) + patch_size <= 264 and sorted(set(stored["col"]))[1] == stride


def test_oscd_reads_both_dates_by_band_name(oscd_root, monkeypatch):
    reads = count_reads(monkeypatch)
    dataset = load_oscd(oscd_root)
    assert reads == []
    stored = dataset.with_format(None)
    index = next(i for i, (row, col) in enumerate(zip(stored["row"], stored["col"])) if (row, col) == (63, 126))
    example = dataset[index]
    assert len(reads) == 2

    window = Window(126, 63, 128, 128)
    for key, date in (("pixel_values", "imgs_1_rect"), ("pixel_values_2", "imgs_2_rect")):
        assert example[key].shape == (12, 128, 128) and example[key].dtype == torch.float32
        folder = oscd_root / OSCD_IMAGES / "city_a" / date
        raw = np.stack([read_layers(folder / f"{band}.tif", window)[0] for band in MODEL_BANDS])
        np.testing.assert_allclose(example[key].numpy(), min_max(raw, eps=1e-12), atol=1e-6)
    change_map = read_layers(oscd_root / OSCD_TRAIN_LABELS / "city_a" / "cm" / "city_a-cm.tif", window)[0]
    assert example["labels"].dtype == torch.int64
    np.testing.assert_array_equal(example["labels"].numpy(), change_map == 2)


def test_oscd_png_change_map_and_collation(oscd_root):
    dataset = load_oscd(oscd_root, split="test", labels_root=oscd_root / OSCD_TRAIN_LABELS)
    assert list(dataset.with_format(None)["city"]) == ["city_b", "city_b"]
    batch = default_data_collator([dataset[0], dataset[1]])
    assert set(batch) == {"pixel_values", "pixel_values_2", "labels"}
    assert batch["pixel_values"].shape == batch["pixel_values_2"].shape == (2, 12, 128, 128)
    assert batch["labels"].shape == (2, 128, 128) and batch["labels"].dtype == torch.int64
    png = read_layers(oscd_root / OSCD_TRAIN_LABELS / "city_b" / "cm" / "cm.png", Window(0, 0, 128, 128))[0]
    np.testing.assert_array_equal(batch["labels"][0].numpy(), png != 0)


def test_oscd_layout_errors(oscd_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train\.txt.*Found in"):
        load_oscd(tmp_path)
    images = tmp_path / OSCD_IMAGES
    shutil.copytree(oscd_root / OSCD_IMAGES / "city_a", images / "city_a")
    (images / "train.txt").write_text("city_a")
    with pytest.raises(FileNotFoundError, match="city_a-cm.tif or .*cm.png"):
        load_oscd(tmp_path)
    (images / "city_a" / "cm").mkdir()
    with rasterio.open(oscd_root / OSCD_TRAIN_LABELS / "city_a" / "cm" / "city_a-cm.tif") as source:
        profile, values = source.profile, source.read() - 1
    with rasterio.open(images / "city_a" / "cm" / "city_a-cm.tif", "w", **profile) as destination:
        destination.write(values)
    dataset = load_oscd(tmp_path)
    with pytest.raises(ValueError, match=r"\[0\].*1 = no change"):
        dataset[0]
    shutil.rmtree(images / "city_a" / "imgs_2_rect")
    with pytest.raises(FileNotFoundError, match="imgs_2_rect"):
        load_oscd(tmp_path)
