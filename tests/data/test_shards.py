"""Prepared shards: the same pixels, band names, labels and georeferencing as the sources; parallel and resumable
writing that leaves no partial shard; memory-mapped and streamed reading."""

import json

import datasets
import numpy as np
import pytest

from spectralgpt_hf import cli, geo
from spectralgpt_hf.configuration_spectralgpt import SENTINEL2_BANDS
from spectralgpt_hf.data import EUROSAT_BANDS, load_eurosat
from spectralgpt_hf.data.shards import (
    ExampleDecoder,
    RasterRecords,
    ShardedImages,
    loader_records,
    prepare,
)


@pytest.fixture(scope="module")
def eurosat_records(eurosat_root):
    return loader_records("eurosat", str(eurosat_root), None, SENTINEL2_BANDS)


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
    from spectralgpt_hf.data.shards import load_prepared

    prepare(loader_records("eurosat", str(eurosat_root), "train", SENTINEL2_BANDS), tmp_path / "train",
            SENTINEL2_BANDS)  # fmt: skip
    prepared, loaded = load_prepared(tmp_path, "train", preset=EUROSAT_PRESET), load_eurosat(eurosat_root, "train")
    assert len(prepared) == len(loaded) == 2
    for index in range(len(loaded)):
        expected, example = loaded[index], prepared[index]
        np.testing.assert_allclose(example["pixel_values"], expected["pixel_values"], rtol=1e-6, atol=1e-6)
        assert int(example["labels"]) == int(expected["labels"])
