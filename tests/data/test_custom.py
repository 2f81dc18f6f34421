"""The loaders of the user's own labelled data: a folder per class, image/mask pairs and a `datasets` dataset of
arrays (a local save_to_disk folder and local Parquet files; no network)."""

import numpy as np
import pytest
import rasterio
import torch
from datasets import Array3D, ClassLabel, Dataset, DatasetDict, Features, Value

from spectralgpt_hf import SENTINEL2_BANDS
from spectralgpt_hf.data import (
    RandomFlipsAndRotations,
    load_class_folders,
    load_dataset_with_images,
    load_image_mask_pairs,
    read_class_names,
)

from decoding_checks import min_max

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

SIZE = 16


def write_tif(path, array, descriptions=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1], count=array.shape[0],
        dtype=array.dtype,
    ) as dataset:  # fmt: skip
        dataset.write(array)
        for index, description in enumerate(descriptions or [], start=1):
            dataset.set_band_description(index, description)


def image(seed, bands=12):
    return np.random.default_rng(seed).integers(0, 10000, (bands, SIZE, SIZE)).astype(np.uint16)


def test_class_folders_read_bands_by_name(tmp_path):
    # described bands, in another order than the model's: read by name
    reversed_bands = list(reversed(SENTINEL2_BANDS))
    write_tif(tmp_path / "train" / "water" / "a.tif", image(0)[::-1].copy(), reversed_bands)
    write_tif(tmp_path / "train" / "forest" / "b2.tif", image(1), SENTINEL2_BANDS)
    write_tif(tmp_path / "train" / "forest" / "b10.tif", image(2), SENTINEL2_BANDS)
    (tmp_path / "train" / "empty").mkdir()  # no GeoTIFF: not a class
    dataset = load_class_folders(tmp_path, "train")
    assert dataset.features["labels"].names == ["forest", "water"]
    assert [path.rsplit("/", 1)[1] for path in dataset.with_format(None)["source"]] == ["b2.tif", "b10.tif", "a.tif"]
    example = dataset[2]
    assert example["pixel_values"].shape == (12, SIZE, SIZE) and int(example["labels"]) == 1
    np.testing.assert_allclose(example["pixel_values"].numpy(), min_max(image(0), 1e-10), atol=1e-5)


def test_class_folders_without_band_descriptions_need_their_order(tmp_path):
    write_tif(tmp_path / "water" / "a.tif", image(0))
    with pytest.raises(Exception, match="file_band_order"):
        load_class_folders(tmp_path)[0]
    example = load_class_folders(tmp_path, file_band_order="spectralgpt")[0]
    np.testing.assert_allclose(example["pixel_values"].numpy(), min_max(image(0), 1e-10), atol=1e-5)


def test_class_folders_say_what_they_found(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "notes.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="no class folders with GeoTIFFs.*notes.txt"):
        load_class_folders(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="No folder .*test.* for split 'test'"):
        load_class_folders(tmp_path, "test")


def write_pairs(root, names):
    for index, name in enumerate(names):
        write_tif(root / "images" / f"{name}.tif", image(index), SENTINEL2_BANDS)
        mask = (np.arange(SIZE * SIZE).reshape(1, SIZE, SIZE) + index) % 3
        write_tif(root / "masks" / f"{name}.tif", mask.astype(np.uint8))


def test_image_mask_pairs(tmp_path):
    write_pairs(tmp_path / "train", ["t1", "t2"])
    (tmp_path / "classes.txt").write_text("background\ncrop\nwater\n")
    dataset = load_image_mask_pairs(tmp_path, "train")
    assert len(dataset) == 2 and read_class_names(tmp_path) == ["background", "crop", "water"]
    example = dataset[1]
    assert example["pixel_values"].shape == (12, SIZE, SIZE)
    assert example["labels"].dtype == torch.int64
    np.testing.assert_array_equal(example["labels"].numpy(), (np.arange(SIZE * SIZE).reshape(SIZE, SIZE) + 1) % 3)
    # the augmentation moves image and mask together
    flipped = load_image_mask_pairs(tmp_path, "train", augmentation=RandomFlipsAndRotations())[1]
    assert sorted(flipped["labels"].flatten().tolist()) == sorted(example["labels"].flatten().tolist())


def test_image_mask_pairs_must_pair_up(tmp_path):
    write_pairs(tmp_path, ["t1"])
    write_tif(tmp_path / "images" / "t2.tif", image(5), SENTINEL2_BANDS)
    with pytest.raises(FileNotFoundError, match="an image or a mask but not both.*t2"):
        load_image_mask_pairs(tmp_path)
    with pytest.raises(FileNotFoundError, match="classes.txt"):
        read_class_names(tmp_path)


def array_dataset(count, seed=0):
    rng = np.random.default_rng(seed)
    features = Features({
        "image": Array3D((12, SIZE, SIZE), "float32"), "label": ClassLabel(names=["a", "b"]), "id": Value("int64"),
    })  # fmt: skip
    return Dataset.from_dict(
        {"image": rng.random((count, 12, SIZE, SIZE), dtype=np.float32), "label": [i % 2 for i in range(count)],
         "id": list(range(count))},
        features=features,
    )  # fmt: skip


def test_a_saved_dataset_with_image_and_label_columns(tmp_path):
    DatasetDict({"train": array_dataset(3), "test": array_dataset(2, seed=1)}).save_to_disk(tmp_path / "saved")
    train = load_dataset_with_images(str(tmp_path / "saved"), "train")
    assert len(train) == 3 and train.features["labels"].names == ["a", "b"]
    example = train[1]
    assert example["pixel_values"].shape == (12, SIZE, SIZE) and int(example["labels"]) == 1
    expected = min_max(np.asarray(array_dataset(3)[1]["image"]), 1e-10)
    np.testing.assert_allclose(example["pixel_values"].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="splits .*'validation'"):
        load_dataset_with_images(str(tmp_path / "saved"), "validation")
    with pytest.raises(ValueError, match="no column 'picture'"):
        load_dataset_with_images(str(tmp_path / "saved"), "train", image_column="picture")


def test_local_parquet_files_named_after_their_splits(tmp_path):
    folder = tmp_path / "parquet"
    folder.mkdir()
    array_dataset(4).to_parquet(folder / "train.parquet")
    array_dataset(2, seed=1).to_parquet(folder / "test.parquet")
    test = load_dataset_with_images(str(folder), "test")
    assert len(test) == 2 and test[0]["pixel_values"].shape == (12, SIZE, SIZE)

    wrong = Dataset.from_dict({"image": np.zeros((1, 3, 4, 4), np.float32).tolist(), "label": [0]})
    wrong.save_to_disk(tmp_path / "wrong")
    with pytest.raises(ValueError, match=r"must be \(12, H, W\) arrays"):
        load_dataset_with_images(str(tmp_path / "wrong"), "train")[0]
