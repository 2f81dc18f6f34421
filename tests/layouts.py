"""Small copies of the real folder layouts, shared by the tests: the four downstream datasets, built from the real
samples of the test data folder (tests/fixtures/data and the package's embedded SSL4EO-S12
pair; labels of BigEarthNet, SegMunich and OSCD are made up; the imagery is real), and the
original pretraining checkpoint's tensor layout."""

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
from rasterio.windows import Window

from spectralgpt_hf import geo
from spectralgpt_hf.data import SEGMUNICH_BANDS

OSCD_IMAGES = "Onera Satellite Change Detection dataset - Images"
OSCD_TRAIN_LABELS = "Onera Satellite Change Detection dataset - Train Labels"
OSCD_TEST_LABELS = "Onera Satellite Change Detection dataset - Test Labels"
BEN_LABELS_43 = [
    "Non-irrigated arable land",
    "Coniferous forest",
    "Road and rail networks and associated land",
    "Transitional woodland/shrub",
]
SEGMUNICH_CODES = np.array([0, 5, 11, 12, 13, 14, 21, 22, 23, 31, 32, 33, 41], dtype=np.uint8)
# The change region of every OSCD city of `write_oscd`, in rows and columns of the first date.
OSCD_CHANGE = (slice(40, 120), slice(90, 200))


def write_eurosat(data_dir: Path, root: Path) -> None:
    """EuroSAT-MS: the 3 real patches AnnualCrop_1, Pasture_300 and SeaLake_3000 in `root/EuroSAT_MS/<Class>/`."""
    shutil.copytree(data_dir / "eurosat_ms", root / "EuroSAT_MS")


def write_bigearthnet(data_dir: Path, root: Path) -> Path:
    """reBEN: the real patch and a second patch id over the same imagery, with a metadata.parquet of two training
    rows and one validation row. Returns the real patch's folder."""
    patch = next((data_dir / "bigearthnet_s2").glob("*/*/"))
    tile = patch.parent.name
    images = root / "BigEarthNet-S2" / tile
    shutil.copytree(patch, images / patch.name)
    other = f"{tile}_75_44"
    (images / other).mkdir()
    for path in sorted(patch.glob("*.tif")):
        shutil.copy(path, images / other / path.name.replace(patch.name, other))
    table = pa.table(
        {
            "patch_id": [patch.name, other, other],
            "labels": [
                BEN_LABELS_43,
                ["Urban fabric", "Marine waters"],
                ["Sea and ocean", "Estuaries", "Water bodies"],
            ],
            "split": ["train", "train", "validation"],
            "country": ["Austria"] * 3,
        }
    )
    pq.write_table(table, root / "metadata.parquet")
    return patch


def write_segmunich(data_dir: Path, root: Path, size: int = 128) -> None:
    """TUM_128: `size` x `size` 10-band cuts of the Major-TOM scene, train tiles 1, 2, 10 (listed: 1, 10) and test
    tile 5 (column offset 40 x the tile number), with label codes in a pattern covering every code of `SEGMUNICH_CODES`."""
    scene = next((data_dir / "major_tom_s2l2a").glob("*/*/*/"))
    pattern = (np.arange(size * size) * 7 // 5) % len(SEGMUNICH_CODES)
    for split, names in (("train", ["1", "2", "10"]), ("test", ["5"])):
        (root / split / "img").mkdir(parents=True)
        (root / split / "label").mkdir()
        for name in names:
            offset = 40 * int(name)
            cut = geo.read_bands(scene, SEGMUNICH_BANDS, window=Window(offset, 300, size, size))
            image = cut.data.astype(np.uint16)
            geo.write_geotiff(root / split / "img" / f"{name}.tif", image, cut.crs, cut.transform)
            codes = np.roll(SEGMUNICH_CODES[pattern], int(name)).reshape(size, size)
            geo.write_geotiff(root / split / "label" / f"{name}.tif", codes, cut.crs, cut.transform)
    (root / "dataset").mkdir()
    (root / "dataset" / "train.txt").write_text("1\n10\n")


def write_rect_folder(date_folder: Path, destination: Path, height: int, width: int):
    """A date of an OSCD city: every band resampled to 10 m and written as <band>.tif, as in imgs_*_rect/."""
    destination.mkdir(parents=True)
    bands = geo.read_bands(date_folder, window=Window(0, 0, width, height))
    for name, layer in zip(bands.band_names, bands.data):
        # The coarse bands leave the grid's edge uncovered (NaN); the rectified OSCD bands have no such gaps.
        layer = np.round(np.nan_to_num(layer)).astype(np.uint16)
        geo.write_geotiff(destination / f"{name}.tif", layer, bands.crs, bands.transform)
    return bands


def write_oscd(data_dir: Path, root: Path) -> None:
    """OSCD from the SSL4EO two-date pair: city_a, the full 264 x 264 pair with a GeoTIFF change map; city_b, a
    200 x 230 first date and a 190 x 230 second date with a PNG change map. Train: both cities; test: city_b (its
    change map also in the test labels folder)."""
    first_date, second_date = sorted((data_dir / "ssl4eo_s12_l2a" / "0000200").iterdir())
    images, labels = root / OSCD_IMAGES, root / OSCD_TRAIN_LABELS
    sizes = {"city_a": ((264, 264), (264, 264)), "city_b": ((200, 230), (190, 230))}
    for city, ((height_1, width_1), (height_2, width_2)) in sizes.items():
        grid = write_rect_folder(first_date, images / city / "imgs_1_rect", height_1, width_1)
        write_rect_folder(second_date, images / city / "imgs_2_rect", height_2, width_2)
        (labels / city / "cm").mkdir(parents=True)
        change = np.zeros((height_1, width_1), dtype=np.uint8)
        change[OSCD_CHANGE] = 1
        if city == "city_a":
            geo.write_geotiff(labels / city / "cm" / f"{city}-cm.tif", change + 1, grid.crs, grid.transform)
        else:
            png_profile = {"driver": "PNG", "width": width_1, "height": height_1, "count": 1, "dtype": "uint8"}
            with rasterio.open(labels / city / "cm" / "cm.png", "w", **png_profile) as png:
                png.write(change[None] * 255)
    (images / "train.txt").write_text("city_a,city_b\n")
    (images / "test.txt").write_text("city_b")
    shutil.copytree(labels / "city_b", root / OSCD_TEST_LABELS / "city_b")


# --- The original checkpoint layout ------------------------------------------------------------------------------


def block_manifest(prefix, depth, dim, hidden):
    shapes = []
    for i in range(depth):
        block = f"{prefix}.{i}"
        shapes += [(f"{block}.norm1.weight", (dim,)), (f"{block}.norm1.bias", (dim,))]
        for name in ("q", "k", "v", "proj"):
            shapes += [(f"{block}.attn.{name}.weight", (dim, dim)), (f"{block}.attn.{name}.bias", (dim,))]
        shapes += [(f"{block}.norm2.weight", (dim,)), (f"{block}.norm2.bias", (dim,))]
        shapes += [(f"{block}.mlp.fc1.weight", (hidden, dim)), (f"{block}.mlp.fc1.bias", (hidden,))]
        shapes += [(f"{block}.mlp.fc2.weight", (dim, hidden)), (f"{block}.mlp.fc2.bias", (dim,))]
    return shapes


def tiny_pretrain_manifest(grid=4, groups=4, dim=768):
    """The original pretraining layout, with two blocks and a small decoder (hidden size 768: the base width)."""
    return (
        [
            ("pos_embed_spatial", (1, grid * grid, dim)),
            ("pos_embed_temporal", (1, groups, dim)),
            ("mask_token", (1, 1, 64)),
            ("decoder_pos_embed_spatial", (1, grid * grid, 64)),
            ("decoder_pos_embed_temporal", (1, groups, 64)),
            ("patch_embed.proj.weight", (dim, 1, 3, 8, 8)),
            ("patch_embed.proj.bias", (dim,)),
        ]
        + block_manifest("blocks", 2, dim, 64)
        + [("norm.weight", (dim,)), ("norm.bias", (dim,)), ("decoder_embed.weight", (64, dim)), ("decoder_embed.bias", (64,))]
        + block_manifest("decoder_blocks", 1, 64, 128)
        + [
            ("decoder_norm.weight", (64,)),
            ("decoder_norm.bias", (64,)),
            ("decoder_pred.weight", (192, 64)),
            ("decoder_pred.bias", (192,)),
        ]
    )
