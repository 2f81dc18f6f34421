"""Many-scene runs through the command line: 1 and 2 processes (gloo), resuming, overwriting, failing scenes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from transformers.testing_utils import slow

from spectralgpt_hf import SpectralGPTConfig, SpectralGPTForChangeDetection, SpectralGPTForSemanticSegmentation
from spectralgpt_hf.cli import main as cli_main
from spectralgpt_hf.inference.runs import EXIT_FAILED_SCENES, expand_inputs, read_pairs, run_scenes, scene_names
from spectralgpt_hf.inference.scene import predict_scene
from spectralgpt_hf.loading import load_image_processor, load_model

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAD_SIZES = dict(
    neck_intermediate_sizes=[8, 8, 16, 16], neck_hidden_sizes=[4, 8, 16, 16], neck_norm_groups=4,
    decode_head_hidden_size=8, decode_head_norm_groups=4,
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def save_model(path: Path, seed: int = 0, model_class=SpectralGPTForSemanticSegmentation) -> Path:
    torch.manual_seed(seed)
    config = SpectralGPTConfig(
        image_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
        num_labels=3, **HEAD_SIZES,
    )  # fmt: skip
    model_class(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "model")


def command(model: Path, scenes, output: Path, *extra: str, processes: int = 1, overlap: int = 16) -> list[str]:
    inputs = [argument for scene in scenes for argument in ("--input", str(scene))]
    arguments = ["predict", "--model", str(model), *inputs, "--output", str(output), "--tile", "64", "--overlap",
                 str(overlap), "--quiet", *extra]  # fmt: skip
    if processes == 1:
        return [sys.executable, "-m", "spectralgpt_hf.cli", *arguments]
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
        str(free_port()), "-m", "spectralgpt_hf.cli", *arguments,
    ]  # fmt: skip


ENVIRONMENT = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}


def run(arguments: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(arguments, env=ENVIRONMENT, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def read_index(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "index.jsonl").read_text().splitlines()]


def outputs(output: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(output.glob("*.tif"))}


def modified(output: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in sorted(output.glob("*.tif"))}


def test_two_processes_write_the_outputs_of_one(model_dir, scene_crops, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    result = run(command(model_dir, scene_crops, one))
    assert result.returncode == 0, result.stderr[-3000:]
    result = run(command(model_dir, scene_crops, two, processes=2))
    assert result.returncode == 0, result.stderr[-3000:]

    assert list(outputs(one)) == [f"scene_{index}.tif" for index in range(4)]
    assert outputs(one) == outputs(two)
    index = read_index(two)
    assert [row["input"] for row in index] == [str(scene) for scene in scene_crops]
    assert [row["status"] for row in index] == ["done"] * 4
    assert sorted(row["process"] for row in index) == [0, 0, 1, 1]  # each scene written by exactly one process
    for row in index:
        record = json.loads(Path(row["output"]).with_suffix(".run.json").read_text())
        assert record["input"] == row["input"]
        west, south, east, north = row["footprint"]
        assert -180 <= west < east <= 180 and -90 <= south < north <= 90
    assert not list(two.glob(".*"))  # no temporary or per-process files left


def test_a_killed_run_resumes_with_the_rest_and_changes_redo_all(model_dir, scene_crops, tmp_path):
    output = tmp_path / "run"
    process = subprocess.Popen(command(model_dir, scene_crops, output), env=ENVIRONMENT, cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(output.glob("*.run.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert process.returncode != 0
    finished = {path.name.removesuffix(".run.json") + ".tif" for path in output.glob("*.run.json")}
    assert 1 <= len(finished) < 4
    assert not list(output.glob(".*.tmp"))  # the scene in progress left no partial file
    before = modified(output)

    result = run(command(model_dir, scene_crops, output))
    assert result.returncode == 0, result.stderr[-3000:]
    statuses = {Path(row["output"]).name: row["status"] for row in read_index(output)}
    assert {name for name, status in statuses.items() if status == "skipped"} == finished
    assert {name for name, status in statuses.items() if status == "done"} == {
        f"scene_{index}.tif" for index in range(4)
    } - finished
    assert all(modified(output)[name] == before[name] for name in finished)

    # the same command again does nothing; a changed argument, a changed model or --overwrite redo all
    result = run(command(model_dir, scene_crops, output))
    assert [row["status"] for row in read_index(output)] == ["skipped"] * 4
    other_model = save_model(tmp_path / "other", seed=1)
    for change in (
        command(model_dir, scene_crops, output, overlap=8),
        command(other_model, scene_crops, output, overlap=8),
        command(other_model, scene_crops, output, "--overwrite", overlap=8),
    ):
        result = run(change)
        assert result.returncode == 0, result.stderr[-3000:]
        assert [row["status"] for row in read_index(output)] == ["done"] * 4, change


def test_a_corrupt_scene_is_recorded_and_the_others_done(model_dir, scene_crops, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for path in scene_crops[0].iterdir():
        (corrupt / path.name).write_bytes(path.read_bytes())
    (corrupt / "B04.tif").write_bytes(b"not a GeoTIFF")
    scenes = [scene_crops[0], corrupt, scene_crops[1]]
    output = tmp_path / "run"
    result = run(command(model_dir, scenes, output))
    assert result.returncode == EXIT_FAILED_SCENES
    index = read_index(output)
    assert [row["status"] for row in index] == ["done", "failed", "done"]
    assert "B04.tif" in index[1]["error"] and "B04.tif" in result.stderr
    assert not (output / "corrupt.tif").exists()

    result = run(command(model_dir, [corrupt, scene_crops[2]], tmp_path / "stopped", "--on-error", "stop"))
    assert result.returncode == 3
    assert [row["status"] for row in read_index(tmp_path / "stopped")] == ["failed", "not run"]


def test_inputs_from_globs_lists_item_collections_and_pairs(scene_crops, tmp_path):
    root = scene_crops[0].parent
    assert expand_inputs([str(root / "scene_[12]")]) == [str(scene_crops[1]), str(scene_crops[2])]
    (root / "list.txt").write_text("# scenes\nscene_3\n\n" + str(scene_crops[0]) + "\n")
    assert expand_inputs([str(root / "list.txt")]) == [str(scene_crops[3]), str(scene_crops[0])]
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "S2B_T33NZA", "links": [{"rel": "self", "href": "items/a.json"}]},
        {"type": "Feature", "id": "S2A_T33NZA", "links": []},
    ]}  # fmt: skip
    (tmp_path / "items.json").write_text(json.dumps(collection))
    assert expand_inputs([str(tmp_path / "items.json")]) == [str(tmp_path / "items" / "a.json"), "S2A_T33NZA"]
    (tmp_path / "pairs.csv").write_text("first,second\nd1/a.tif,d2/a.tif\n")
    assert read_pairs(tmp_path / "pairs.csv") == [(str(tmp_path / "d1/a.tif"), str(tmp_path / "d2/a.tif"))]
    assert scene_names([("x/a.tif", None), ("y/a.tif", None), ("d1/b", "d2/c")])[2] == "b__c"
    first, second, _ = scene_names([("x/a.tif", None), ("y/a.tif", None), ("d1/b", "d2/c")])
    assert first.startswith("a-") and second.startswith("a-") and first != second


def test_run_scenes_from_python_returns_the_index(scene_crops, tmp_path):
    torch.manual_seed(0)
    config = SpectralGPTConfig(
        image_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64
    )
    from spectralgpt_hf import SpectralGPTModel

    index = run_scenes(SpectralGPTModel(config), scene_crops[:2], tmp_path, task="embed", tile=64, overlap=16,
                       progress=False)  # fmt: skip
    assert [row.status for row in index] == ["done", "done"]
    assert [Path(row.output).name for row in index] == ["scene_0.tif", "scene_1.tif"]
    assert len((tmp_path / "index.jsonl").read_text().splitlines()) == 2


def later_date(scene: Path, destination: Path) -> Path:
    """A second date of `scene` on its grid: every band's values scaled down by a fifth."""
    destination.mkdir()
    for path in scene.glob("B*.tif"):
        with rasterio.open(path) as dataset:
            profile, values = dataset.profile, dataset.read()
        with rasterio.open(destination / path.name, "w", **profile) as copy:
            copy.write((values * 0.8).astype(values.dtype))
    return destination


def read(path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read()


def test_change_detection_over_pairs_from_a_csv(scene_crops, tmp_path):
    model_dir = save_model(tmp_path / "model", model_class=SpectralGPTForChangeDetection)
    later = [later_date(scene, tmp_path / f"later_{index}") for index, scene in enumerate(scene_crops[:2])]
    (tmp_path / "pairs.csv").write_text(
        "first,second\n" + "".join(f"{first},{second.name}\n" for first, second in zip(scene_crops, later))
    )  # a relative second date is taken from the CSV's folder
    output = tmp_path / "changes"
    arguments = ["predict", "--model", str(model_dir), "--pairs", str(tmp_path / "pairs.csv"), "--output",
                 str(output), "--tile", "64", "--overlap", "16", "--quiet"]  # fmt: skip
    assert cli_main(arguments) == 0

    index = read_index(output)
    assert [(row["input"], row["input_2"], row["status"]) for row in index] == [
        (str(first), str(second), "done") for first, second in zip(scene_crops, later)
    ]
    assert [Path(row["output"]).name for row in index] == ["scene_0__later_0.tif", "scene_1__later_1.tif"]
    model = load_model(model_dir).eval()
    for (first, second), row in zip(zip(scene_crops, later), index):
        expected = predict_scene(model, first, tmp_path / "expected.tif", input_2=second, tile=64, overlap=16,
                                 processor=load_image_processor(model_dir), progress=False)  # fmt: skip
        classes = read(row["output"])
        np.testing.assert_array_equal(classes, read(expected))
        assert classes.dtype == np.uint8 and set(np.unique(classes)) <= {0, 1, 2}


def test_dtype_sets_the_models_precision(scene_crops, tmp_path):
    model_dir = save_model(tmp_path / "model")
    embeddings = {}
    for dtype in ("float32", "bfloat16"):
        path = tmp_path / f"{dtype}.tif"
        assert cli_main(["embed", "--model", str(model_dir), "--input", str(scene_crops[0]), "--output", str(path),
                         "--tile", "64", "--overlap", "16", "--dtype", dtype, "--quiet"]) == 0  # fmt: skip
        embeddings[dtype] = read(path)
    assert embeddings["float32"].dtype == embeddings["bfloat16"].dtype == np.float32  # outputs stay float32
    assert not np.array_equal(embeddings["float32"], embeddings["bfloat16"])
    scale = np.abs(embeddings["float32"]).mean()
    assert np.abs(embeddings["bfloat16"] - embeddings["float32"]).mean() < 0.02 * scale  # bfloat16: 8-bit mantissa

    # a run in another precision is another model: nothing of the float32 run is skipped
    output = tmp_path / "run"
    for dtype in ("float32", "bfloat16"):
        assert cli_main(["predict", "--model", str(model_dir), "--input", str(scene_crops[1]), "--output",
                         str(output), "--tile", "64", "--overlap", "16", "--dtype", dtype, "--quiet"]) == 0  # fmt: skip
        assert [row["status"] for row in read_index(output)] == ["done"]


@slow  # torch.compile builds C++ kernels: minutes on a shared CPU
@pytest.mark.parametrize("task", ["embed", "predict"])
def test_compile_gives_the_eager_outputs(scene_crops, tmp_path, task):
    model_dir = save_model(tmp_path / "model")
    results = {}
    for flags in ((), ("--compile",)):
        path = tmp_path / f"{task}{''.join(flags)}.tif"
        assert cli_main([task, "--model", str(model_dir), "--input", str(scene_crops[2]), "--output", str(path),
                         "--tile", "64", "--overlap", "16", "--quiet", *flags]) == 0  # fmt: skip
        results[flags] = read(path)
    if task == "embed":
        np.testing.assert_allclose(results[("--compile",)], results[()], rtol=1e-4, atol=1e-5)
    else:  # class maps: fused kernels may flip a near-tie
        assert np.mean(results[("--compile",)] == results[()]) > 0.99
