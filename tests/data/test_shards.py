"""Prepared shards: the same pixels, band names, labels and georeferencing as the sources; parallel and resumable
writing that leaves no partial shard; memory-mapped and streamed reading."""

import json

import datasets
import numpy as np
import pytest
import rasterio.windows

from spectralgpt_hf import cli, geo
from spectralgpt_hf.configuration_spectralgpt import SENTINEL2_BANDS
from spectralgpt_hf.data import (
    EUROSAT_BANDS,
    OSCD_PRESET,
    SEGMUNICH_BANDS,
    SEGMUNICH_PRESET,
    RandomFlipsAndRotations,
    load_eurosat,
    load_oscd,
    load_segmunich,
)
from spectralgpt_hf.data.shards import (
    ExampleDecoder,
    RasterRecords,
    ShardedImages,
    load_prepared,
    loader_records,
    prepare,
)
from spectralgpt_hf.training.recipes import oscd_class_weights


@pytest.fixture(scope="module")
def eurosat_records(eurosat_root):
    return loader_records("eurosat", str(eurosat_root))


@pytest.mark.parametrize("file_format", ["arrow", "parquet"])
def test_prepared_eurosat_round_trips(eurosat_root, eurosat_records, tmp_path, file_format):
    report = prepare(eurosat_records, tmp_path, SENTINEL2_BANDS, file_format=file_format, samples_per_shard=1)
    images = ShardedImages(tmp_path)
    assert report.shards_written == len(images) == len(eurosat_records) >= 2
    assert images.band_names == list(SENTINEL2_BANDS)
    stored = load_eurosat(eurosat_root).with_format(None)
    for index in range(len(images)):
        source = geo.read_bands(stored[index]["source"], SENTINEL2_BANDS, file_band_order=EUROSAT_BANDS)
        example = images.example(index)
        np.testing.assert_array_equal(example["bands"], source.data)  # NaN where the source is nodata
        assert images[index].dtype == np.uint16
        assert example["labels"] == stored[index]["labels"]
        assert example["source"] == stored[index]["source"]
        assert example["crs"] == source.crs.to_string()
        assert example["transform"] == list(source.transform)[:6]


def test_prepared_rasters_in_parallel_and_float16(data_dir, tmp_path):
    folders = sorted(str(path) for path in (data_dir / "bigearthnet_s2").glob("*/*"))[:1]
    files = sorted(str(path) for path in (data_dir / "eurosat_ms").glob("*/*.tif"))[:3]
    records = RasterRecords(files, SENTINEL2_BANDS, EUROSAT_BANDS)
    prepare(records, tmp_path / "u16", SENTINEL2_BANDS, samples_per_shard=1, num_workers=2)
    prepare(records, tmp_path / "f16", SENTINEL2_BANDS, samples_per_shard=2, dtype="float16")
    uint16, float16 = ShardedImages(tmp_path / "u16"), ShardedImages(tmp_path / "f16")
    assert len(uint16.files) == 3 and len(float16.files) == 2
    for index, source in enumerate(files):
        expected = geo.read_bands(source, SENTINEL2_BANDS, file_band_order=EUROSAT_BANDS).data
        np.testing.assert_array_equal(uint16.example(index)["bands"], expected)
        np.testing.assert_allclose(float16.example(index)["bands"], expected, rtol=1e-3)
    band_folder = RasterRecords(folders, SENTINEL2_BANDS)
    prepare(band_folder, tmp_path / "folder", SENTINEL2_BANDS)
    # 20 m and 60 m bands resampled to the 10 m grid are rounded to whole digital numbers
    expected = geo.read_bands(folders[0], SENTINEL2_BANDS).data
    np.testing.assert_allclose(ShardedImages(tmp_path / "folder").example(0)["bands"], expected, rtol=0, atol=0.5)


class FailingRecords:
    """Records that fail at one index, as an interrupted run would, and count what is read."""

    def __init__(self, records, fail_at=None):
        self.records, self.fail_at, self.read = records, fail_at, []

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        if index == self.fail_at:
            raise KeyboardInterrupt
        self.read.append(index)
        return self.records[index]


def test_interrupted_prepare_resumes_without_redoing_finished_shards(eurosat_records, tmp_path):
    assert len(eurosat_records) >= 3
    interrupted = FailingRecords(eurosat_records, fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        prepare(interrupted, tmp_path, SENTINEL2_BANDS, samples_per_shard=1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plan.json", "shard-00000.arrow", "shard-00001.arrow"]
    finished = {path: path.stat().st_mtime_ns for path in tmp_path.glob("shard-*")}
    (tmp_path / "shard-00002.arrow.partial").write_bytes(b"left by a killed writer")
    resumed = FailingRecords(eurosat_records)
    report = prepare(resumed, tmp_path, SENTINEL2_BANDS, samples_per_shard=1)
    assert resumed.read == list(range(2, len(eurosat_records)))
    assert (report.shards_kept, report.shards_written) == (2, len(eurosat_records) - 2)
    assert {path: path.stat().st_mtime_ns for path in finished} == finished
    assert not list(tmp_path.glob("*.partial"))
    assert json.loads((tmp_path / "index.json").read_text())["num_samples"] == len(eurosat_records)
    with pytest.raises(ValueError, match="another prepare"):
        prepare(eurosat_records, tmp_path, SENTINEL2_BANDS, samples_per_shard=2)


def test_prepared_shards_stream_with_datasets(eurosat_records, tmp_path):
    prepare(eurosat_records, tmp_path, SENTINEL2_BANDS, file_format="parquet", samples_per_shard=2)
    images = ShardedImages(tmp_path)
    stream = datasets.load_dataset("parquet", data_files=images.files, split="train", streaming=True)
    decode = ExampleDecoder(images.index)
    for index, example in enumerate(stream):
        np.testing.assert_array_equal(decode(example), images[index])


def test_prepare_command(eurosat_root, tmp_path, capsys):
    output = tmp_path / "shards"
    command = ["prepare", str(output), "--loader", "eurosat", "--root", str(eurosat_root), "--samples-per-shard", "2"]
    assert cli.main(command + ["--workers", "1"]) == 0
    assert "kept 0 finished shards" in capsys.readouterr().out
    assert cli.main(command) == 0
    assert "Wrote 0 shards (0 samples" in capsys.readouterr().out
    images = ShardedImages(output)
    assert images.index["has_labels"] and images.example(0)["labels"] == 0
    assert cli.main(["prepare", str(tmp_path / "none"), "--rasters", str(tmp_path / "missing")]) == 1
    assert "spectralgpt-hf prepare: error:" in capsys.readouterr().err


def test_fine_tuning_reads_a_prepared_split_as_the_loader_does(eurosat_root, tmp_path):
    from spectralgpt_hf.data import EUROSAT_PRESET

    prepare(loader_records("eurosat", str(eurosat_root), "train"), tmp_path / "train", SENTINEL2_BANDS)
    prepared, loaded = load_prepared(tmp_path, "train", preset=EUROSAT_PRESET), load_eurosat(eurosat_root, "train")
    assert len(prepared) == len(loaded) == 2
    for index in range(len(loaded)):
        expected, example = loaded[index], prepared[index]
        np.testing.assert_allclose(example["pixel_values"], expected["pixel_values"], rtol=1e-6, atol=1e-6)
        assert int(example["labels"]) == int(expected["labels"])


def assert_same_examples(prepared, loaded):
    assert len(prepared) == len(loaded) >= 2
    for index in range(len(loaded)):
        expected, example = loaded[index], prepared[index]
        assert example.keys() == expected.keys()
        for name in expected:
            assert example[name].dtype == expected[name].dtype
            np.testing.assert_allclose(example[name], expected[name], rtol=1e-6, atol=1e-6)


def test_prepared_segmunich_round_trips(segmunich_root, tmp_path):
    records = loader_records("segmunich", str(segmunich_root), "train")
    prepare(records, tmp_path / "train", records.band_names, samples_per_shard=1)
    images = ShardedImages(tmp_path / "train")
    assert images.band_names == list(SEGMUNICH_BANDS) and images.index["loader"] == "segmunich"
    stored = load_segmunich(segmunich_root).with_format(None)
    for index, loaded in enumerate(load_segmunich(segmunich_root)):
        example = images.example(index)
        source = geo.read_bands(stored[index]["image_path"], SEGMUNICH_BANDS, file_band_order=SEGMUNICH_BANDS)
        np.testing.assert_array_equal(example["bands"], source.data)
        assert example["label_mask"].dtype == np.uint8
        np.testing.assert_array_equal(example["label_mask"], loaded["labels"].numpy())
        assert example["source"] == stored[index]["image_path"] and "labels" not in example
    assert_same_examples(load_prepared(tmp_path, "train", preset=SEGMUNICH_PRESET), load_segmunich(segmunich_root))
    # the augmentation moves image and mask together, as the loader's does
    augmented = [load(augmentation=RandomFlipsAndRotations(seed=3)) for load in (
        lambda **options: load_prepared(tmp_path, "train", preset=SEGMUNICH_PRESET, **options),
        lambda **options: load_segmunich(segmunich_root, **options))]  # fmt: skip
    assert_same_examples(*augmented)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_prepared_oscd_round_trips_with_both_dates_and_class_weights(oscd_root, tmp_path):
    records = loader_records("oscd", str(oscd_root), "train")
    prepare(records, tmp_path / "train", records.band_names, samples_per_shard=4, file_format="parquet")
    # a rerun keeps the finished shards: the index fields read back from plan.json are the same settings
    rerun = prepare(records, tmp_path / "train", records.band_names, samples_per_shard=4, file_format="parquet")
    assert rerun.shards_written == 0 and rerun.shards_kept == len(list((tmp_path / "train").glob("shard-*"))) >= 2
    images = ShardedImages(tmp_path / "train")
    loaded = load_oscd(oscd_root)
    stored = loaded.with_format(None)
    assert images.index["loader_options"] == {"patch_size": 128, "stride": 63}
    assert images.column("city") == stored["city"]
    for index in range(len(loaded)):
        example, expected = images.example(index), loaded[index]
        window = rasterio.windows.Window(stored[index]["col"], stored[index]["row"], 128, 128)
        for column, date in (("bands", "source_1"), ("bands_2", "source_2")):
            source = geo.read_bands(stored[index][date], SENTINEL2_BANDS, window=window)
            np.testing.assert_array_equal(example[column], source.data)
        np.testing.assert_array_equal(example["label_mask"], expected["labels"].numpy())
        assert example["transform"] == list(source.transform)[:6]
    prepared = load_prepared(tmp_path, "train", preset=OSCD_PRESET, patch_size=128, stride=63)
    assert_same_examples(prepared, loaded)
    # the class weights count the cities' whole change maps, as from the loader's dataset, for any subset
    assert oscd_class_weights(prepared) == oscd_class_weights(loaded)
    last = range(len(loaded) - 1, len(loaded))
    assert oscd_class_weights(prepared.select(last)) == oscd_class_weights(loaded.select(last))
    assert oscd_class_weights(prepared.select(last)) != oscd_class_weights(loaded)
    with pytest.raises(ValueError, match="prepared with .*'stride': 63.*not {'stride': 50}"):
        load_prepared(tmp_path, "train", preset=OSCD_PRESET, patch_size=128, stride=50)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_prepare_command_with_mask_loaders(segmunich_root, oscd_root, tmp_path, capsys):
    assert cli.main(["prepare", str(tmp_path / "seg"), "--loader", "segmunich", "--root", str(segmunich_root)]) == 1
    assert "needs a split" in capsys.readouterr().err
    for loader, root in (("segmunich", segmunich_root), ("oscd", oscd_root)):
        output = tmp_path / loader / "test"
        command = ["prepare", str(output), "--loader", loader, "--root", str(root), "--split", "test", "--workers", "1"]
        assert cli.main(command) == 0
        assert ShardedImages(output).index["has_labels"]
