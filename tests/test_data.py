"""Dataset loaders on small copies of the real folder layouts, built from the real samples of the test data folder, and
the training augmentations. Labels of BigEarthNet, SegMunich and OSCD are made up here; the imagery is real."""

import math
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.windows import Window
from transformers import default_data_collator

from spectralgpt_hf import raster
from spectralgpt_hf.data import (
    BIGEARTHNET_43_TO_19,
    BIGEARTHNET_CLASSES,
    MixupCutmix,
    RandomFlipsAndRotations,
    RandomResizedCropAndFlip,
    load_bigearthnet,
    load_eurosat,
    load_oscd,
    load_segmunich,
)
from spectralgpt_hf.image_processing_spectralgpt import (
    BIGEARTHNET_MEAN,
    BIGEARTHNET_STD,
    EUROSAT_MEAN,
    EUROSAT_STD,
    SpectralGPTImageProcessor,
)

import layouts
from layouts import OSCD_IMAGES, OSCD_TRAIN_LABELS, SEGMUNICH_CODES

# Layer (1-based) of each SpectralGPT input band in the EuroSAT-MS tifs, from the data README: B01..B09, B10, B11,
# B12, B8A. SpectralGPT order: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12.
EUROSAT_LAYERS_IN_MODEL_ORDER = [1, 2, 3, 4, 5, 6, 7, 8, 13, 9, 11, 12]
MODEL_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")



def min_max(array, eps):
    array = array.astype(np.float64)
    low = array.min(axis=(-2, -1), keepdims=True)
    high = array.max(axis=(-2, -1), keepdims=True)
    return (array - low) / (high - low + eps)


def read_layers(path, window=None):
    with rasterio.open(path) as dataset:
        return dataset.read(window=window)


def dihedral_images(array):
    """The 8 images that flips and quarter turns make of a (H, W) array."""
    return [np.rot90(flipped, k) for flipped in (array, array[:, ::-1]) for k in range(4)]


def count_reads(monkeypatch):
    calls = []
    read_bands = raster.read_bands

    def counting_read_bands(*args, **kwargs):
        calls.append(args[0])
        return read_bands(*args, **kwargs)

    monkeypatch.setattr(raster, "read_bands", counting_read_bands)
    return calls


# --- EuroSAT ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eurosat_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("eurosat")
    layouts.write_eurosat(data_dir, root)
    (root / "eurosat-train.txt").write_text("AnnualCrop_1.jpg\nSeaLake_3000.jpg\n")
    return root


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


# --- BigEarthNet v2 --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bigearthnet_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("bigearthnet")
    patch = layouts.write_bigearthnet(data_dir, root)
    return root, patch


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


# --- SegMunich -------------------------------------------------------------------------------------------------

# Spec 10.3: 21->1, 22->2, 23->3, 31->4, 32->6, 33->7, 41->8, 13->9, 14->10; 0, 5, 11, 12 kept.
SEGMUNICH_CLASS_IDS = np.array([0, 5, 11, 12, 9, 10, 1, 2, 3, 4, 6, 7, 8])


@pytest.fixture(scope="module")
def segmunich_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("segmunich")
    layouts.write_segmunich(data_dir, root)
    return root


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


# --- OSCD ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oscd_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("oscd")
    layouts.write_oscd(data_dir, root)
    return root


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


# --- Lazy decoding and Trainer readiness -----------------------------------------------------------------------


def test_loaders_read_nothing_until_accessed(eurosat_root, bigearthnet_root, segmunich_root, monkeypatch):
    reads = count_reads(monkeypatch)
    datasets = [load_eurosat(eurosat_root), load_bigearthnet(bigearthnet_root[0]), load_segmunich(segmunich_root)]
    assert reads == []
    for dataset in datasets:
        dataset[0]
    assert len(reads) == 3


def test_dataloader_batches_with_default_collator(bigearthnet_root, eurosat_root):
    loader = torch.utils.data.DataLoader(
        load_bigearthnet(bigearthnet_root[0]), batch_size=2, collate_fn=default_data_collator
    )
    batch = next(iter(loader))
    assert batch["pixel_values"].shape == (2, 12, 128, 128) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].shape == (2, 19) and batch["labels"].dtype == torch.float32
    batch = default_data_collator([load_eurosat(eurosat_root)[index] for index in (0, 2)])
    assert batch["labels"].tolist() == [0, 9] and batch["labels"].dtype == torch.int64


# --- Augmentations ---------------------------------------------------------------------------------------------


def test_random_resized_crop_shape_and_determinism():
    image = torch.rand(12, 64, 64, generator=torch.Generator().manual_seed(0))
    first = [RandomResizedCropAndFlip(128, seed=1)(image) for _ in range(2)]
    augmentation = RandomResizedCropAndFlip(128, seed=1)
    repeated = [augmentation(image), augmentation(image)]
    assert first[0].shape == (12, 128, 128) and first[0].dtype == torch.float32
    assert torch.equal(first[0], first[1]) and torch.equal(first[0], repeated[0])
    assert not torch.equal(repeated[0], repeated[1])
    assert not torch.equal(first[0], RandomResizedCropAndFlip(128, seed=2)(image))


def test_random_resized_crop_of_the_whole_image_is_a_bicubic_resize():
    image = torch.rand(3, 40, 40)
    resized = F.interpolate(image[None], size=(96, 96), mode="bicubic", align_corners=False)[0]
    whole = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), seed=0)
    torch.testing.assert_close(RandomResizedCropAndFlip(96, flip_probability=0.0, **whole)(image), resized)
    torch.testing.assert_close(RandomResizedCropAndFlip(96, flip_probability=1.0, **whole)(image), resized.flip(-1))


def test_flips_and_rotations_move_all_tensors_together():
    mask = torch.arange(6 * 6).reshape(6, 6)
    image = torch.stack([mask.float(), -mask.float()])
    seen = set()
    for seed in range(100):
        moved_image, moved_second, moved_mask = RandomFlipsAndRotations(seed=seed)(image, image + 1, mask)
        candidates = dihedral_images(mask.numpy())
        seen.update(index for index, candidate in enumerate(candidates) if np.array_equal(candidate, moved_mask))
        assert torch.equal(moved_image[0], moved_mask.float()) and torch.equal(moved_image[1], -moved_mask.float())
        assert torch.equal(moved_second, moved_image + 1)
    assert seen == set(range(8))
    unchanged = RandomFlipsAndRotations(0.0, 0.0, rotate=False, seed=0)(mask)
    assert torch.equal(unchanged, mask)
    with pytest.raises(ValueError, match="share their last two"):
        RandomFlipsAndRotations()(image, mask[:5])


class _SameImage(torch.utils.data.Dataset):
    def __init__(self, augmentation):
        self.image, self.augmentation = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0)), augmentation

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return self.augmentation(self.image)


def test_seeded_augmentation_differs_between_dataloader_workers():
    def crops():
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader(_SameImage(RandomResizedCropAndFlip(8, seed=3)), num_workers=2)
        return [batch[0] for batch in loader]

    first, second = crops(), crops()
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    # Items 0 and 1 are the first draw of worker 0 and of worker 1.
    assert not torch.equal(first[0], first[1])


def mix(mixing, seed):
    """A batch of 4 images, each constant at its index + 1 in every band, mixed with `seed`; returns the images,
    the mixed images and the mixed targets."""
    torch.manual_seed(seed)
    images = torch.arange(1.0, 5.0).reshape(4, 1, 1, 1).expand(4, 2, 16, 16).contiguous()
    mixed, targets = mixing(images, torch.tensor([0, 1, 2, 0]))
    return images, mixed, targets


def test_mixup_blends_each_image_with_its_mirror_and_their_targets_alike():
    mixing = MixupCutmix(num_labels=3, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    weights = []
    for seed in range(20):
        images, mixed, targets = mix(mixing, seed)
        lam = float(targets[1, 1])  # image 1 (class 1) is mixed with image 2 (class 2)
        torch.testing.assert_close(mixed, lam * images + (1 - lam) * images.flip(0))
        expected = torch.tensor([[lam, 0.0, 1 - lam], [0.0, lam, 1 - lam], [0.0, 1 - lam, lam], [1 - lam, 0.0, lam]])
        expected[0, 0] = expected[3, 0] = 1.0  # images 0 and 3 are both class 0
        expected[0, 2] = expected[3, 2] = 0.0
        torch.testing.assert_close(targets, expected)
        weights.append(lam)
    assert 0 < min(weights) < 0.3 and 0.7 < max(weights) < 1  # Beta(0.8, 0.8) spreads over (0, 1)


def test_cutmix_pastes_a_box_of_the_mirror_and_weighs_targets_by_its_area():
    mixing = MixupCutmix(num_labels=3, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0)
    for seed in range(20):
        images, mixed, targets = mix(mixing, seed)
        pasted = mixed != images
        assert torch.equal(mixed[pasted], images.flip(0)[pasted])
        box = pasted[1, 0]  # one box, the same for every image and band
        assert torch.equal(pasted, box.expand_as(pasted))
        rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
        if len(rows):
            assert box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
        torch.testing.assert_close(targets[1], torch.tensor([0.0, 1 - box.float().mean(), box.float().mean()]))


def test_mixing_switches_between_methods_and_smooths_the_targets():
    mixing = MixupCutmix(num_labels=3, label_smoothing=0.3)  # the EuroSAT recipe's alphas and switch
    cutmix_batches = 0
    for seed in range(40):
        images, mixed, targets = mix(mixing, seed)
        cutmix_batches += bool(torch.isin(mixed, images).all())  # cutmix keeps pixel values, mixup blends them
        torch.testing.assert_close(targets.sum(-1), torch.ones(4))
        assert targets.min() >= 0.1 - 1e-6  # smoothing / classes everywhere
        torch.testing.assert_close(targets[0], targets[3])  # two images of class 0 keep the same target
    assert 10 < cutmix_batches < 30
    with pytest.raises(ValueError, match="one of them > 0"):
        MixupCutmix(3, mixup_alpha=0.0, cutmix_alpha=0.0)
    with pytest.raises(ValueError, match="one class id per image"):
        mixing(torch.rand(4, 2, 8, 8), torch.rand(4, 3))
