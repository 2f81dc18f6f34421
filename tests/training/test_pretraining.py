"""Pretraining with Accelerate on real Sentinel-2 tiles cut from the Major-TOM scene: two-process sharding, layout
independence, exact resumption, progressive training at a larger size and the `datasets` inputs."""

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from rasterio.windows import Window
from safetensors.torch import load_file

from spectralgpt_hf import (
    SpectralGPTConfig,
    SpectralGPTForPreTraining,
    SpectralGPTImageProcessor,
    cli,
    convert_original_checkpoint,
)
from spectralgpt_hf import geo
from spectralgpt_hf.training.optimization import scaled_learning_rate
from spectralgpt_hf.training.pretraining import PretrainingArguments, find_raster_samples, pretrain

from testing_utils import REPO_ROOT
from layouts import tiny_pretrain_manifest
TINY_MODEL = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "decoder_hidden_size": 32, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2,
    "decoder_intermediate_size": 64, "image_size": 32,
}  # fmt: skip
TINY_OVERRIDES = ",".join(f"{name}={value}" for name, value in TINY_MODEL.items() if name != "image_size")
NUM_STACKED_TILES, NUM_BAND_FOLDERS = 14, 2
# Not imported from conftest: run beside tests/data, "conftest" is the last one pytest loaded.
POSITION_TABLES = ("spectralgpt.embeddings.position_embeddings.spatial", "decoder.position_embeddings.spatial")

# Records the sample keys each process decodes and the values it logs, then runs the command line.
RECORDING_LAUNCHER = """
import json, os, sys
from accelerate import Accelerator
from spectralgpt_hf import cli
from spectralgpt_hf.training import pretraining

record_dir, rank = sys.argv[1], os.environ["RANK"]
decode = pretraining.PretrainingSamples.__getitem__
log = Accelerator.log

def recording_getitem(self, key):
    with open(f"{record_dir}/samples-{rank}.txt", "a") as file:
        file.write(f"{key[0]} {key[1]}\\n")
    return decode(self, key)

def recording_log(self, values, step=None, log_kwargs=None):
    with open(f"{record_dir}/log-{rank}.jsonl", "a") as file:
        file.write(json.dumps({"step": step, **values}) + "\\n")
    return log(self, values, step=step)

pretraining.PretrainingSamples.__getitem__ = recording_getitem
Accelerator.log = recording_log
sys.exit(cli.main(["pretrain", *sys.argv[2:]]))
"""


@pytest.fixture(scope="module")
def tiles(data_dir, tmp_path_factory) -> Path:
    """14 stacked 12-band 32 x 32 GeoTIFFs and 2 per-band folders (plus a cloud mask to ignore) from one scene."""
    root = tmp_path_factory.mktemp("tiles")
    scene_folder = next((data_dir / "major_tom_s2l2a").glob("*/*/*"))
    with geo.open_scene(scene_folder) as scene:
        for index in range(NUM_STACKED_TILES + NUM_BAND_FOLDERS):
            bands = scene.read(Window(64 * (index % 4), 64 * (index // 4), 32, 32))
            if index < NUM_STACKED_TILES:
                geo.write_geotiff(
                    root / f"tile_{index:02d}.tif", bands.data, bands.crs, bands.transform,
                    band_descriptions=bands.band_names,
                )  # fmt: skip
                continue
            folder = root / f"scene_{index:02d}"
            folder.mkdir()
            for name, band in zip(bands.band_names, bands.data):
                geo.write_geotiff(folder / f"{name}.tif", band, bands.crs, bands.transform)
            geo.write_geotiff(folder / "cloud_mask.tif", bands.valid_mask, bands.crs, bands.transform)
    return root


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest, and unaffected by other load, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reset_accelerate_state():
    """Gives the next in-process run a new Accelerator state, as a new process would have."""
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    reset_accelerate_state()
    yield
    reset_accelerate_state()


def tiny_arguments(output_dir: Path, **overrides) -> PretrainingArguments:
    options = {
        "output_dir": str(output_dir), "config_overrides": TINY_OVERRIDES, "image_size": 32,
        "per_device_batch_size": 4, "max_steps": 2, "warmup_steps": 0, "learning_rate": 1e-3, "logging_steps": 1,
        "report_to": "none", "dataloader_num_workers": 0,
    }  # fmt: skip
    return PretrainingArguments(**{**options, **overrides})


def command_line(arguments: PretrainingArguments) -> list[str]:
    words = []
    for name, value in vars(arguments).items():
        if value is None or value == []:
            continue
        words.append(f"--{name}")
        words.extend(map(str, value) if isinstance(value, list) else [str(value)])
    return words


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def record_logs(monkeypatch) -> list[dict]:
    logged = []
    monkeypatch.setattr(Accelerator, "log", lambda self, values, step=None, **kwargs: logged.append(values))
    return logged


@pytest.fixture(scope="module")
def two_process_run(tiles, tmp_path_factory):
    """2 CPU processes (gloo) x 2 samples per step, for 2 steps; returns (output_dir, record_dir)."""
    run_dir = tmp_path_factory.mktemp("two_processes")
    record_dir = run_dir / "records"
    record_dir.mkdir()
    launcher = run_dir / "recording_launcher.py"
    launcher.write_text(RECORDING_LAUNCHER)
    arguments = tiny_arguments(run_dir / "output", rasters=[str(tiles)], per_device_batch_size=2)
    # Accelerate's --cpu launcher starts one process (it expects mpirun for more); the torchrun-based launcher
    # with ACCELERATE_USE_CPU gives 2 processes on the CPU backend (gloo).
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
        "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        str(launcher), str(record_dir), *command_line(arguments),
    ]  # fmt: skip
    environment = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=environment, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return Path(arguments.output_dir), record_dir


def test_two_processes_train_on_disjoint_samples_and_save_a_loadable_model(two_process_run):
    output_dir, record_dir = two_process_run
    keys = [set((record_dir / f"samples-{rank}.txt").read_text().splitlines()) for rank in (0, 1)]
    assert len(keys[0]) >= 4 and len(keys[1]) >= 4  # 2 steps x 2 samples, plus the data loader's read-ahead
    assert not keys[0] & keys[1]
    assert {int(key.split()[1]) for key in keys[0] | keys[1]} <= set(range(NUM_STACKED_TILES + NUM_BAND_FOLDERS))

    model = SpectralGPTForPreTraining.from_pretrained(output_dir / "model")
    assert model.config.hidden_size == 32 and model.config.image_size == 32
    processor = SpectralGPTImageProcessor.from_pretrained(output_dir / "model")
    assert processor.normalization == "min_max"
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(1, 12, 32, 32)).loss)


def test_one_process_with_the_global_batch_matches_two_processes(two_process_run, tiles, tmp_path, monkeypatch):
    output_dir, record_dir = two_process_run
    logged = record_logs(monkeypatch)
    pretrain(tiny_arguments(tmp_path, rasters=[str(tiles)], per_device_batch_size=4))

    two_process_losses = [json.loads(line)["loss"] for line in (record_dir / "log-0.jsonl").read_text().splitlines()]
    assert [values["loss"] for values in logged] == pytest.approx(two_process_losses, rel=1e-5)
    single = load_file(tmp_path / "model" / "model.safetensors")
    double = load_file(output_dir / "model" / "model.safetensors")
    for name, tensor in single.items():
        # Softmax ignores a shift of the keys, so the key bias's true gradient is 0: it gets rounding noise, which
        # Adam's normalisation turns into steps of +-lr whose signs depend on the summation order.
        if not name.endswith("k_proj.bias"):
            torch.testing.assert_close(tensor, double[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture(scope="module")
def tile_dataset(tiles) -> datasets.Dataset:
    images = [geo.read_bands(path).data for path in sorted(tiles.glob("tile_*.tif"))]
    features = datasets.Features({"image": datasets.Array3D(shape=(12, 32, 32), dtype="float32")})
    return datasets.Dataset.from_dict({"image": images}, features=features)


@pytest.fixture
def fast_datasets(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    # Streamed Parquet waits this long for Arrow's threads whenever a stream is closed.
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


@pytest.mark.parametrize(
    "source, stop_step, resume, workers",
    [("rasters", 3, "latest", 0), ("stream", 3, "latest", 0), ("stream", 2, "folder", 1)],
    ids=["rasters-mid-epoch", "stream-end-of-epoch", "stream-mid-epoch-from-folder-with-a-worker"],
)
def test_interrupted_run_resumes_exactly(
    tiles, tile_dataset, fast_datasets, tmp_path, monkeypatch, source, stop_step, resume, workers
):
    # 2 x 2 accumulation = 4 samples per step: 4 steps per epoch from the 16 rasters, 3 from the 14 streamed tiles.
    if source == "rasters":
        data = {"rasters": [str(tiles)]}
    else:
        tile_dataset.to_parquet(tmp_path / "tiles.parquet")
        data = {"dataset": str(tmp_path / "tiles.parquet"), "streaming": True, "dataloader_num_workers": workers}
    arguments = tiny_arguments(
        tmp_path / "uninterrupted", **data, per_device_batch_size=2, gradient_accumulation_steps=2, max_steps=6,
        warmup_steps=2, save_steps=1, save_total_limit=2,
    )  # fmt: skip
    pretrain(arguments)
    reset_accelerate_state()
    checkpoints = tmp_path / "uninterrupted" / "checkpoints"
    assert [path.name for path in sorted(checkpoints.iterdir())] == ["step-000005", "step-000006"]

    def stop(self, values, step=None, **kwargs):
        if step == stop_step:
            os.kill(os.getpid(), signal.SIGTERM)  # as a cluster's pre-emption notice

    interrupted = replace(arguments, output_dir=str(tmp_path / "interrupted"), save_steps=100)
    with monkeypatch.context() as patches:
        patches.setattr(Accelerator, "log", stop)
        assert pretrain(interrupted) is None
    saved = tmp_path / "interrupted" / "checkpoints" / f"step-{stop_step:06d}"
    assert list(saved.parent.iterdir()) == [saved]
    reset_accelerate_state()
    with pytest.raises(ValueError, match="--resume"):
        pretrain(interrupted)

    pretrain(replace(interrupted, resume="latest" if resume == "latest" else str(saved)))
    expected = load_file(tmp_path / "uninterrupted" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "interrupted" / "model" / "model.safetensors")
    # A checkpoint is also a from_pretrained folder.
    last_checkpoint = SpectralGPTForPreTraining.from_pretrained(checkpoints / "step-000006").state_dict()
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(last_checkpoint[name], tensor, rtol=0, atol=0, msg=name)


def test_resume_refuses_other_settings(tiles, tmp_path):
    arguments = tiny_arguments(tmp_path, rasters=[str(tiles)], max_steps=2, save_steps=1)
    pretrain(arguments)
    reset_accelerate_state()
    with pytest.raises(ValueError, match="global_batch_size was 4, now 2"):
        pretrain(replace(arguments, per_device_batch_size=2, max_steps=3, resume="latest"))


def test_learning_rate_scales_with_the_global_batch(tiles, tmp_path, monkeypatch):
    logged = record_logs(monkeypatch)
    # One warm-up step: the first step's rate is the peak.
    arguments = tiny_arguments(
        tmp_path, rasters=[str(tiles)], learning_rate=None, base_learning_rate=0.0128, per_device_batch_size=2,
        gradient_accumulation_steps=2, warmup_steps=1,
    )  # fmt: skip
    pretrain(arguments)
    # 2 per device x 2 accumulation x 1 process = 4 samples per step.
    assert logged[0]["learning_rate"] == pytest.approx(scaled_learning_rate(0.0128, 2, 2, 1)) == 2e-4


def bicubic_resize(table: torch.Tensor, old_grid: int, new_grid: int) -> torch.Tensor:
    grid = table.reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, -1)


@pytest.mark.parametrize("reinitialize", [False, True], ids=["interpolated", "reinitialized"])
def test_continues_at_a_larger_image_size(tiles, tmp_path, reinitialize):
    source = SpectralGPTForPreTraining(SpectralGPTConfig(**TINY_MODEL))
    source.save_pretrained(tmp_path / "stage1")
    # A zero learning rate leaves the weights as initialised from stage 1.
    arguments = tiny_arguments(
        tmp_path / "stage2", rasters=[str(tiles)], config_overrides=None, init_from=str(tmp_path / "stage1"),
        image_size=48, learning_rate=0.0, max_steps=1, reinitialize_position_embeddings=reinitialize,
    )  # fmt: skip
    model = SpectralGPTForPreTraining.from_pretrained(pretrain(arguments))

    assert model.config.image_size == 48
    source_weights, weights = source.state_dict(), model.state_dict()
    for name in POSITION_TABLES:
        assert weights[name].shape == (1, 36, 32)
        resized = bicubic_resize(source_weights[name], 4, 6)
        if reinitialize:
            assert not torch.allclose(weights[name], resized)
            assert 0.015 < weights[name].std() < 0.025
        else:
            torch.testing.assert_close(weights[name], resized)
    for name, tensor in source_weights.items():
        if name not in POSITION_TABLES:
            torch.testing.assert_close(weights[name], tensor, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("streaming", [False, True], ids=["indexed", "streamed"])
def test_trains_on_datasets_inputs(tiles, tile_dataset, fast_datasets, tmp_path, monkeypatch, streaming):
    tile_dataset.save_to_disk(tmp_path / "arrow")
    tile_dataset.to_parquet(tmp_path / "tiles.parquet")
    losses = {}
    for layout, source in (("arrow", tmp_path / "arrow"), ("parquet", tmp_path / "tiles.parquet")):
        logged = record_logs(monkeypatch)
        arguments = tiny_arguments(
            tmp_path / layout, dataset=str(source), max_steps=2, streaming=streaming,
            dataloader_num_workers=1 if streaming else 0,
        )  # fmt: skip
        assert pretrain(arguments) == tmp_path / layout / "model"
        reset_accelerate_state()
        losses[layout] = [values["loss"] for values in logged]
        assert len(losses[layout]) == 2 and all(np.isfinite(losses[layout]))
    if streaming:
        return  # the streams are split into shards differently, so their orders differ
    # The same images under the same keys: the losses of the GeoTIFFs they were read from.
    logged = record_logs(monkeypatch)
    pretrain(tiny_arguments(tmp_path / "rasters", rasters=[str(tiles / "tile_*.tif")], max_steps=2))
    assert losses["arrow"] == losses["parquet"] == [values["loss"] for values in logged]


def test_tensorboard_logs(tiles, tmp_path):
    pytest.importorskip("tensorboardX")
    pretrain(tiny_arguments(tmp_path, rasters=[str(tiles / "tile_*.tif")], report_to="tensorboard"))
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*"))


def test_finds_stacked_files_and_band_folders(tiles):
    samples = find_raster_samples([str(tiles)])
    assert len(samples) == NUM_STACKED_TILES + NUM_BAND_FOLDERS
    assert sum(Path(sample).is_dir() for sample in samples) == NUM_BAND_FOLDERS
    # Band files matched by a pattern stand for their folder; the cloud mask is not a sample.
    assert find_raster_samples([str(tiles / "scene_*" / "*.tif")]) == [s for s in samples if Path(s).is_dir()]
    with pytest.raises(FileNotFoundError, match="matches"):
        find_raster_samples([str(tiles / "nothing_*.tif")])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({}, "exactly one of --rasters"),
        ({"rasters": ["x"], "dataset": "y"}, "exactly one of --rasters"),
        ({"dataset": "y", "streaming": True, "warmup_steps": None}, "--max_steps and the warm-up"),
        ({"rasters": ["x"], "mask_ratio": 1.0}, "mask_ratio"),
        ({"rasters": ["x"], "reinitialize_position_embeddings": True}, "--init_from"),
        ({"rasters": ["x"], "init_from": "m"}, "keeps its architecture"),
    ],
)
def test_rejects_inconsistent_arguments(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_arguments(tmp_path, **overrides)


def test_mixed_precision_gradient_checkpointing_and_clipping(tiles, tmp_path, monkeypatch):
    logged = record_logs(monkeypatch)
    forward_passes, norms = [], []
    forward_loss = SpectralGPTForPreTraining.forward_loss

    def recording_forward_loss(self, pixel_values, logits, mask):
        checkpointed = self.spectralgpt.layers[0].gradient_checkpointing
        forward_passes.append((logits.dtype, torch.is_autocast_enabled("cpu"), checkpointed))
        return forward_loss(self, pixel_values, logits, mask)

    clip_grad_norm = Accelerator.clip_grad_norm_

    def recording_clip_grad_norm(self, parameters, max_norm, **kwargs):
        parameters = list(parameters)
        norm_before = clip_grad_norm(self, parameters, max_norm, **kwargs)
        norms.append((float(norm_before), float(torch.nn.utils.get_total_norm([p.grad for p in parameters]))))
        return norm_before

    monkeypatch.setattr(SpectralGPTForPreTraining, "forward_loss", recording_forward_loss)
    monkeypatch.setattr(Accelerator, "clip_grad_norm_", recording_clip_grad_norm)
    arguments = tiny_arguments(
        tmp_path, rasters=[str(tiles)], mixed_precision="bf16", gradient_checkpointing=True, max_grad_norm=0.5
    )
    pretrain(arguments)
    assert all(np.isfinite(values["loss"]) for values in logged)
    # Both steps ran the model under bf16 autocast with checkpointed blocks.
    assert forward_passes == [(torch.bfloat16, True, True)] * 2
    # The gradient norms (about 30 for this tiny model's first steps) were cut to 0.5.
    assert len(norms) == 2 and all(before > 1 and after == pytest.approx(0.5, rel=1e-3) for before, after in norms)
    assert SpectralGPTForPreTraining.from_pretrained(tmp_path / "model").dtype == torch.float32


def test_continues_from_an_original_checkpoint(tiles, make_weights, tmp_path):
    original = tmp_path / "SpectralGPT.pth"
    state_dict = make_weights.make_state_dict(tiny_pretrain_manifest(), seed=0)  # 32 px, original layout
    make_weights.write_original_checkpoint("pretrain", state_dict, original)
    arguments = tiny_arguments(
        tmp_path / "stage2", rasters=[str(tiles)], config_overrides=None, init_from=str(original), image_size=48,
        learning_rate=0.0, max_steps=1,
    )  # fmt: skip
    weights = SpectralGPTForPreTraining.from_pretrained(pretrain(arguments)).state_dict()
    converted = convert_original_checkpoint(original).state_dict()
    for name, tensor in converted.items():
        if name in POSITION_TABLES:
            torch.testing.assert_close(weights[name], bicubic_resize(tensor, 4, 6))
        else:
            torch.testing.assert_close(weights[name], tensor, rtol=0, atol=0, msg=name)


def test_rejects_bad_data(tiles, tile_dataset, tmp_path):
    with pytest.raises(ValueError, match="fewer than one optimiser step"):
        pretrain(tiny_arguments(tmp_path, rasters=[str(tiles / "tile_00.tif")]))
    reset_accelerate_state()
    tile_dataset.rename_column("image", "pixels").save_to_disk(tmp_path / "renamed")
    with pytest.raises(ValueError, match="no column 'image'"):
        pretrain(tiny_arguments(tmp_path, dataset=str(tmp_path / "renamed")))
    reset_accelerate_state()
    ten_bands = datasets.Dataset.from_dict({"image": [image[:10] for image in tile_dataset["image"]]})
    ten_bands.save_to_disk(tmp_path / "ten_bands")
    with pytest.raises(ValueError, match=r"shape \(12, height, width\)"):
        pretrain(tiny_arguments(tmp_path, dataset=str(tmp_path / "ten_bands")))
    reset_accelerate_state()
    with pytest.raises(ValueError, match="warm-up"):
        pretrain(tiny_arguments(tmp_path, rasters=[str(tiles)], warmup_steps=5))


def test_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["pretrain", "--help"])
    assert exit_info.value.code == 0 and "--init_from" in capsys.readouterr().out
    assert cli.main(["pretrain", "--output_dir", str(tmp_path)]) == 1
    assert "exactly one of --rasters" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["multi_gpu", "fsdp", "deepspeed_zero2", "multi_node"])
def test_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO_ROOT / "examples" / "accelerate" / f"{name}.yaml"))
    assert config.num_processes >= 8 and config.mixed_precision == "bf16"


# --- Prepared shards, batched augmentation on the device, torch.compile ------------------------------------------


@pytest.fixture(scope="module")
def whole_number_tiles(tiles, tmp_path_factory) -> Path:
    """The stacked tiles as uint16 digital numbers, as Sentinel-2 products store them (`tiles` holds the 20 m and
    60 m bands resampled to 10 m, with fractions that uint16 shards round away)."""
    root = tmp_path_factory.mktemp("uint16_tiles")
    for path in sorted(tiles.glob("tile_*.tif")):
        bands = geo.read_bands(path)
        geo.write_geotiff(root / path.name, np.rint(bands.data).astype(np.uint16), bands.crs, bands.transform,
                          band_descriptions=bands.band_names)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def prepared_tiles(whole_number_tiles, tmp_path_factory) -> Path:
    from spectralgpt_hf.data.shards import RasterRecords, prepare

    folder = tmp_path_factory.mktemp("prepared")
    bands = SpectralGPTConfig().band_names
    prepare(RasterRecords(find_raster_samples([str(whole_number_tiles)]), bands), folder, bands, samples_per_shard=5)
    return folder


def first_step(arguments: PretrainingArguments, monkeypatch) -> tuple[float, dict]:
    logged = record_logs(monkeypatch)
    model = pretrain(replace(arguments, max_steps=1))
    reset_accelerate_state()
    return logged[0]["loss"], load_file(model / "model.safetensors")


def test_prepared_run_takes_the_same_first_step_as_the_raster_run(
    whole_number_tiles, prepared_tiles, tmp_path, monkeypatch
):
    rasters = tiny_arguments(tmp_path / "rasters", rasters=[str(whole_number_tiles)])
    raster_loss, raster_weights = first_step(rasters, monkeypatch)
    prepared = tiny_arguments(tmp_path / "prepared", dataset=str(prepared_tiles))
    prepared_loss, prepared_weights = first_step(prepared, monkeypatch)
    assert prepared_loss == raster_loss
    for name, tensor in raster_weights.items():
        torch.testing.assert_close(prepared_weights[name], tensor, rtol=0, atol=0, msg=name)
    # The batched variant makes the same crops as matrix products of another shape: equal up to float rounding.
    on_device_loss, _ = first_step(replace(prepared, output_dir=str(tmp_path / "device"), augment_on_device=True),
                                   monkeypatch)  # fmt: skip
    assert on_device_loss == pytest.approx(raster_loss, rel=1e-5)


def test_streams_prepared_shards_with_workers(prepared_tiles, fast_datasets, tmp_path, monkeypatch):
    logged = record_logs(monkeypatch)
    arguments = tiny_arguments(
        tmp_path, dataset=str(prepared_tiles), streaming=True, dataloader_num_workers=1, augment_on_device=True,
    )  # fmt: skip
    assert pretrain(arguments) is not None
    assert len(logged) == 2 and all(np.isfinite(values["loss"]) for values in logged)


def test_torch_compile_and_adamw_kernels(tiles, tmp_path, monkeypatch):
    eager_loss, eager_weights = first_step(
        tiny_arguments(tmp_path / "eager", rasters=[str(tiles)], adamw_implementation="for_loop"), monkeypatch
    )
    # aot_eager traces forward and backward as inductor does, without its slow code generation.
    compiled = tiny_arguments(tmp_path / "compiled", rasters=[str(tiles)], torch_compile=True,
                              torch_compile_backend="aot_eager", adamw_implementation="fused")  # fmt: skip
    compiled_loss, compiled_weights = first_step(compiled, monkeypatch)
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-5)
    assert compiled_weights.keys() == eager_weights.keys()  # saved without the compile wrapper's prefix
    for name, tensor in eager_weights.items():
        torch.testing.assert_close(compiled_weights[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_compiled_run_saves_a_plain_model_and_resumes(tiles, tmp_path, monkeypatch):
    compiled = tiny_arguments(tmp_path / "whole", rasters=[str(tiles)], torch_compile=True, max_steps=2,
                              torch_compile_backend="aot_eager", save_steps=1)  # fmt: skip
    pretrain(compiled)
    reset_accelerate_state()
    for folder in (tmp_path / "whole" / "model", tmp_path / "whole" / "checkpoints" / "step-000002"):
        _, info = SpectralGPTForPreTraining.from_pretrained(folder, output_loading_info=True)
        assert (info["missing_keys"], info["unexpected_keys"], info["mismatched_keys"]) == (set(), set(), set())
    # the first step's checkpoint (the compiled model's weights and optimiser state) continues to the same end
    first = tmp_path / "whole" / "checkpoints" / "step-000001"
    pretrain(replace(compiled, output_dir=str(tmp_path / "resumed"), save_steps=100, resume=str(first)))
    whole = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    assert resumed.keys() == whole.keys()
    for name, tensor in whole.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)


# --- The optimiser and schedule of the original recipe --------------------------------------------------------------


def test_optimizer_and_schedule_follow_the_original_recipe(tiles, tmp_path, monkeypatch):
    """No --learning_rate: lr = base x global batch / 256; warm-up from --warmup_epochs; half-cosine to 0; AdamW
    betas (0.9, 0.95); weight decay only on matrices and kernels (the original also decayed the position tables and
    the mask token, a deviation the optimisation module documents)."""
    prepared = []
    original_prepare = Accelerator.prepare

    def recording_prepare(self, *objects):
        prepared.append(objects)
        return original_prepare(self, *objects)

    monkeypatch.setattr(Accelerator, "prepare", recording_prepare)
    logged = record_logs(monkeypatch)
    # 16 samples / 4 per step = 4 steps per epoch: 2 epochs are 8 steps, half an epoch of warm-up is 2 steps.
    arguments = tiny_arguments(
        tmp_path, rasters=[str(tiles)], learning_rate=None, base_learning_rate=0.0128, max_steps=-1,
        num_train_epochs=2, warmup_steps=None, warmup_epochs=0.5,
    )  # fmt: skip
    pretrain(arguments)

    peak = 0.0128 * 4 / 256
    cosine = [0.5 * (1 + np.cos(np.pi * step / 6)) for step in range(1, 7)]
    assert [values["learning_rate"] for values in logged] == pytest.approx([peak * f for f in [0.5, 1, *cosine]])
    assert [values["epoch"] for values in logged] == [0, 0, 0, 0, 1, 1, 1, 1]
    model, optimizer = prepared[0][:2]
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    decay = {names[id(p)]: group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decay.keys() == set(names.values())
    assert {group["betas"] for group in optimizer.param_groups} == {(0.9, 0.95)}
    not_decayed = {name for name, weight_decay in decay.items() if weight_decay == 0.0}
    assert {name for name, weight_decay in decay.items() if weight_decay == 0.05} == set(names.values()) - not_decayed
    expected_not_decayed = {
        name for name, parameter in model.named_parameters()
        if name.endswith((".bias", "mask_token")) or "norm" in name or "position_embeddings" in name
    }  # fmt: skip
    assert not_decayed == expected_not_decayed
    assert {"decoder.mask_token", *POSITION_TABLES, "spectralgpt.layernorm.weight"} <= not_decayed
    assert "spectralgpt.embeddings.patch_embeddings.projection.weight" not in not_decayed


# --- Resume and failure corners -----------------------------------------------------------------------------------


class Terminated(Exception):
    """Raised by the SIGTERM handler these tests install in place of the default, which would end pytest."""


@pytest.fixture
def sigterm_raises():
    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_second_signal_during_the_stop_checkpoint_leaves_the_previous_one_to_resume_from(
    tiles, tmp_path, monkeypatch, sigterm_raises
):
    arguments = tiny_arguments(tmp_path / "uninterrupted", rasters=[str(tiles)], max_steps=4, warmup_steps=1)
    with monkeypatch.context() as patches:
        uninterrupted = record_logs(patches)
        pretrain(arguments)
    reset_accelerate_state()

    def first_signal_at_step_3(self, values, step=None, **kwargs):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    save_state = Accelerator.save_state

    def second_signal_after_writing(self, output_dir=None, **kwargs):
        save_state(self, output_dir, **kwargs)
        if "000003" in str(output_dir):
            os.kill(os.getpid(), signal.SIGTERM)  # the default action again: the process ends mid-save

    interrupted = replace(arguments, output_dir=str(tmp_path / "interrupted"), save_steps=2, save_total_limit=5)
    with monkeypatch.context() as patches:
        patches.setattr(Accelerator, "log", first_signal_at_step_3)
        patches.setattr(Accelerator, "save_state", second_signal_after_writing)
        with pytest.raises(Terminated):
            pretrain(interrupted)
    checkpoints = tmp_path / "interrupted" / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == [".step-000003.partial", "step-000002"]
    assert any((checkpoints / ".step-000003.partial").iterdir())  # written, but never renamed
    reset_accelerate_state()

    logged = record_logs(monkeypatch)
    pretrain(replace(interrupted, resume="latest"))
    # Steps 3 and 4: resumed from step 2; the next save cleared the leftover.
    assert [values["loss"] for values in logged] == [values["loss"] for values in uninterrupted[2:]]
    assert sorted(path.name for path in checkpoints.iterdir()) == ["step-000002", "step-000004"]
    expected = load_file(tmp_path / "uninterrupted" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "interrupted" / "model" / "model.safetensors")
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)


def test_signal_during_the_final_save_leaves_the_previous_model(tiles, tmp_path, monkeypatch, sigterm_raises):
    arguments = tiny_arguments(tmp_path, rasters=[str(tiles)], save_steps=1)
    model_dir = pretrain(arguments)
    (model_dir / "marker").write_text("the previous model")
    before = {path.name: path.read_bytes() for path in model_dir.iterdir()}
    reset_accelerate_state()

    # Resuming a finished run only saves the final model again; a SIGTERM arrives half-way through.
    monkeypatch.setattr(SpectralGPTImageProcessor, "save_pretrained",
                        lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGTERM))  # fmt: skip
    with pytest.raises(Terminated):
        pretrain(replace(arguments, resume="latest"))
    assert {path.name: path.read_bytes() for path in model_dir.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoints", "model"]


def test_results_do_not_depend_on_the_number_of_data_workers(tiles, tmp_path, monkeypatch):
    # 5 steps of 4 per step: into the second epoch, which persistent workers must draw afresh.
    runs = {}
    for workers in (0, 2):
        arguments = tiny_arguments(tmp_path / str(workers), rasters=[str(tiles)], max_steps=5,
                                   dataloader_num_workers=workers)  # fmt: skip
        logged = record_logs(monkeypatch)
        runs[workers] = [values["loss"] for values in logged], load_file(pretrain(arguments) / "model.safetensors")
        reset_accelerate_state()
    assert runs[2][0] == runs[0][0]
    for name, tensor in runs[0][1].items():
        torch.testing.assert_close(runs[2][1][name], tensor, rtol=0, atol=0, msg=name)
