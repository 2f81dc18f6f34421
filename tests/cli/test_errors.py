"""User mistakes end in one `spectralgpt-hf CMD: error:` line that says what to do, no traceback: exit 2 for usage
errors (found before any scene is read), 1 for failed runs. Each test runs the real command line in a subprocess."""

import zipfile

import pytest
import rasterio
from command_line import EUROSAT_TILE, check, run_cli, save_tiny_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("models"))


def scene_command(command, model, *extra):
    return [command, "--model", model, "--quiet", *extra]


def test_missing_model_says_no_folder_and_no_hub_repository(tmp_path):
    result = run_cli("predict", "--model", "./no-such-folder", "--input", "x.tif", "--output", "o.tif", cwd=tmp_path)
    check(result, "predict", 1, "no such folder", "HF_HUB_OFFLINE")


def test_png_output_is_refused(tmp_path):
    check(run_cli("predict", "--model", "m", "--input", "x.tif", "--output", "o.png", cwd=tmp_path), "predict", 2,
          "GeoTIFF", ".tif")  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_cuda_on_a_cpu_build_is_a_usage_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_cli("embed", "--model", "m", "--input", "x.tif", "--output", "o.tif", "--device", "cuda")
    check(result, "embed", 2, "--device cpu")


@pytest.mark.parametrize(
    "records",
    [
        {"junk/data.pkl": b"\x80\x02h\x07."},  # a zip without torch's version record
        {"junk/data.pkl": b"\x80\x02j\x35\x12\x6b\x0a.", "junk/version": b"3\n"},  # refers to an object never stored
    ],
    ids=["no-version-record", "missing-object"],
)
def test_unreadable_checkpoint(tmp_path, records):
    with zipfile.ZipFile(tmp_path / "junk.pth", "w") as archive:
        for name, data in records.items():
            archive.writestr(name, data)
    result = run_cli("convert", str(tmp_path / "junk.pth"), str(tmp_path / "out"))
    check(result, "convert", 1, "junk.pth", "not a readable PyTorch checkpoint")
    assert not (tmp_path / "out").exists()


def test_corrupt_geotiff(models, tmp_path):
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00" + bytes(range(200)))
    result = run_cli(*scene_command("predict", models["segmenter"], "--input", str(tmp_path / "corrupt.tif"),
                                    "--output", str(tmp_path / "o.tif")))  # fmt: skip
    check(result, "predict", 1, "corrupt.tif")
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("command", ["predict", "embed"])
def test_unknown_band_order_names_the_flag(models, tmp_path, command):
    model = models["segmenter" if command == "predict" else "pretraining"]
    result = run_cli(*scene_command(command, model, "--input", EUROSAT_TILE, "--output", str(tmp_path / "o.tif")))
    message = check(result, command, 1, "band order is unknown", "--file-band-order", "eurosat_ms")
    assert "file_band_order" not in message


def test_missing_bands_name_the_fill_missing_flag(models, tmp_path):
    with rasterio.open(EUROSAT_TILE) as tile:
        profile = {**tile.profile, "count": 1}
        for index, band in [(2, "B02"), (3, "B03"), (4, "B04"), (8, "B08")]:
            with rasterio.open(tmp_path / f"{band}.tif", "w", **profile) as output:
                output.write(tile.read(index), 1)
    arguments = scene_command("predict", models["segmenter"], "--input", str(tmp_path), "--output")
    message = check(run_cli(*arguments, str(tmp_path / "o.tif")), "predict", 1, "B05", "--fill-missing")
    assert "fill_missing" not in message
    assert run_cli(*arguments, str(tmp_path / "filled.tif"), "--fill-missing").returncode == 0


def test_publish_without_a_processor_names_the_flag(models):
    message = check(run_cli("publish", models["pretraining"], "org/tiny"), "publish", 1, "--image-processor")
    assert "image_processor " not in message


def test_change_detection_without_a_second_date_names_input2(models, tmp_path):
    result = run_cli(*scene_command("predict", models["change"], "--input", EUROSAT_TILE, "--output",
                                    str(tmp_path / "o.tif")))  # fmt: skip
    check(result, "predict", 2, "change-detection", "--input2")


def test_predict_with_a_pretraining_model_says_to_embed(models, tmp_path):
    result = run_cli(*scene_command("predict", models["pretraining"], "--input", EUROSAT_TILE, "--output",
                                    str(tmp_path / "o.tif")))  # fmt: skip
    check(result, "predict", 2, "pretraining model", "spectralgpt-hf embed")


def test_a_second_date_for_a_one_date_model_is_refused(models, tmp_path):
    result = run_cli(*scene_command("predict", models["classifier"], "--input", EUROSAT_TILE, "--input2",
                                    EUROSAT_TILE, "--output", str(tmp_path / "o.tif")))  # fmt: skip
    check(result, "predict", 2, "--input2", "Leave them out")
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("flags, word", [(["--tile", "100"], "tile (100)"), (["--overlap", "32"], "overlap (32)")])
def test_tile_and_overlap_are_checked_against_the_model_before_reading(models, tmp_path, flags, word):
    """The input does not exist: the flags are refused before it is looked for."""
    result = run_cli(*scene_command("predict", models["segmenter"], "--input", str(tmp_path / "absent.tif"),
                                    "--output", str(tmp_path / "o.tif"), *flags))  # fmt: skip
    check(result, "predict", 2, "--tile / --overlap", word)


@pytest.mark.parametrize("command, model", [("predict", "segmenter"), ("embed", "pretraining")])
def test_default_overlap_comes_from_the_model(models, tmp_path, command, model):
    """A 32 px model: the default overlap is a quarter of its tile, not 32."""
    output = tmp_path / "o.tif"
    result = run_cli(*scene_command(command, models[model], "--input", EUROSAT_TILE, "--output", str(output),
                                    "--file-band-order", "eurosat_ms"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    with rasterio.open(output) as written:
        assert (written.height, written.width) == ((64, 64) if command == "predict" else (8, 8))


def test_failing_scene_of_a_folder_run_is_one_line(models, tmp_path):
    """Many scenes: a failing one is recorded and reported in one line; its traceback only with --debug."""
    (tmp_path / "broken.tif").write_bytes(b"not a GeoTIFF")
    arguments = scene_command("predict", models["segmenter"], "--input", EUROSAT_TILE, str(tmp_path / "broken.tif"),
                              "--file-band-order", "eurosat_ms", "--output")  # fmt: skip
    result = run_cli(*arguments, str(tmp_path / "run"))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if "broken.tif" in line]
    assert len(failed) == 1 and failed[0].startswith("failed: ") and "Cannot open" in failed[0]
    assert (tmp_path / "run" / "SeaLake_3000.tif").is_file()

    debugged = run_cli(*arguments, str(tmp_path / "debugged"), "--debug")
    assert debugged.returncode == 1 and "Traceback" in debugged.stderr


def test_each_process_of_a_multi_gpu_launch_takes_the_gpu_of_its_local_rank(monkeypatch):
    import torch

    from spectralgpt_hf.cli import checked_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert checked_device(None) == checked_device("cuda") == "cuda"
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert checked_device(None) == checked_device("cuda") == "cuda:1"
    assert checked_device("cuda:0") == "cuda:0" and checked_device("cpu") == "cpu"
