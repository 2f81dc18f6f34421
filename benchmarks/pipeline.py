"""Whole-scene pipeline speed with a model that costs almost nothing; prints the figures as JSON (recorded in
benchmarks/RESULTS.md, section "Scene pipeline").

    python benchmarks/pipeline.py                 # tiles/s per process (stacked, per-band) and scenes per hour
    python benchmarks/pipeline.py --tiles-only    # tiles/s only
    python benchmarks/pipeline.py --reader tile   # the per-tile reader, for comparison
    python benchmarks/pipeline.py --gpu           # scenes per hour on GPUs: base model, bf16, --compile

The scene is a 2136 x 2136 px mosaic (2 x 2 copies) of the real Major-TOM sample, written once into a temporary
folder in both layouts: one stacked 12-band GeoTIFF on the 10 m grid, and per-band files at 10, 20 and 60 m as
Sentinel-2 products come. The model is a 1-layer, 32-wide encoder; `embed_scene` runs it with tile 128, overlap
32, batch 8, one torch thread. Start-up (opening files, creating the output) is subtracted: the time of a one-tile
crop of the same layout is taken off the mosaic's time. Per layout: "pipeline" (reading, normalising, blending,
writing: no prefetching thread, the model's forward time subtracted, as timed by hooks on the model), "pipeline
per CPU second" (the same in CPU time of the thread, which a shared machine's load inflates far less than wall
time) and "end to end" (the default prefetching thread, and the model). Each is the best of `--rounds` rounds.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SPECTRALGPT_SHARED", ROOT.parent / "shared")) / "data"
TILE, OVERLAP, BATCH = 128, 32, 8


def sample_folder() -> Path:
    return Path(glob.glob(str(DATA_DIR / "major_tom_s2l2a" / "*" / "*" / "*"))[0])


def write_mosaics(folder: Path, copies: int = 2, crop: int | None = None) -> tuple[Path, Path]:
    """(stacked file, per-band folder) of `copies` x `copies` copies of the sample (or its top-left `crop` px)."""
    import rasterio

    from spectralgpt_hf.configuration_spectralgpt import SENTINEL2_BANDS
    from spectralgpt_hf.geo import read_bands, write_geotiff

    source = sample_folder()
    bands_folder = folder / "bands"
    bands_folder.mkdir(parents=True)
    for path in sorted(source.glob("B*.tif")):
        with rasterio.open(path) as dataset:
            data = dataset.read(1)
            if crop is not None:
                data = data[: max(1, crop * 10 // int(dataset.res[0])), : max(1, crop * 10 // int(dataset.res[0]))]
            write_geotiff(bands_folder / path.name, np.tile(data, (copies, copies)), dataset.crs, dataset.transform,
                          compress="lzw", tiled=True, blockxsize=1024, blockysize=1024)  # fmt: skip
    stacked = read_bands(bands_folder, SENTINEL2_BANDS)
    data = np.nan_to_num(stacked.data).astype(np.uint16)
    write_geotiff(folder / "stacked.tif", data, stacked.crs, stacked.transform, band_descriptions=list(SENTINEL2_BANDS),
                  compress="lzw", tiled=True, blockxsize=256, blockysize=256)  # fmt: skip
    return folder / "stacked.tif", bands_folder


def near_free_model():
    import torch

    from spectralgpt_hf import SpectralGPTConfig, SpectralGPTModel

    torch.manual_seed(0)
    config = SpectralGPTConfig(
        image_size=TILE, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64
    )
    return SpectralGPTModel(config).eval()


def forward_timer(model) -> list[float]:
    """Hooks that add the seconds (wall clock, and CPU time of the calling thread) of each forward of `model` to
    the returned list [wall, cpu]."""
    spent, started = [0.0, 0.0], []

    def start(module, inputs) -> None:
        started.append((time.perf_counter(), time.thread_time()))

    def stop(module, inputs, output) -> None:
        wall, cpu = started.pop()
        spent[0] += time.perf_counter() - wall
        spent[1] += time.thread_time() - cpu

    model.register_forward_pre_hook(start)
    model.register_forward_hook(stop)
    return spent


def time_embed(model, spent: list[float], source: Path, output: Path, reader: str, prefetch: int) -> tuple:
    """(wall seconds of the whole call, of it in the model's forward, CPU seconds of this thread outside the
    model's forward); the CPU figure counts all the pipeline's work only without prefetching."""
    from spectralgpt_hf.inference.scene import embed_scene

    options = {} if reader == "strip" else {"reader": reader}
    spent[:] = [0.0, 0.0]
    start, cpu = time.perf_counter(), time.thread_time()
    embed_scene(model, source, output, tile=TILE, overlap=OVERLAP, batch_size=BATCH, progress=False,
                prefetch=prefetch, **options)  # fmt: skip
    return time.perf_counter() - start, spent[0], time.thread_time() - cpu - spent[1]


def tile_count(source: Path) -> int:
    from spectralgpt_hf.geo import open_scene
    from spectralgpt_hf.inference.tiling import tile_starts

    step = TILE - OVERLAP
    with open_scene(source) as scene:
        return len(tile_starts(scene.height, TILE, step, 8)) * len(tile_starts(scene.width, TILE, step, 8))


def tiles_per_second(reader: str, rounds: int) -> dict[str, dict[str, float]]:
    import torch

    torch.set_num_threads(1)
    model = near_free_model()
    spent = forward_timer(model)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        mosaic = write_mosaics(folder / "mosaic")
        crop = write_mosaics(folder / "crop", copies=1, crop=TILE)
        for name, big, small in (("stacked", mosaic[0], crop[0]), ("per-band", mosaic[1], crop[1])):
            count = tile_count(big)
            time_embed(model, spent, small, folder / "warm.tif", reader, 0)  # imports, first forward
            figures = {"pipeline": 0.0, "pipeline per CPU second": 0.0, "end to end": 0.0,
                       "model ms per tile": float("inf")}  # fmt: skip
            for _ in range(rounds):  # the rounds interleave the measurements
                startup, startup_model, startup_cpu = time_embed(model, spent, small, folder / "small.tif", reader, 0)
                seconds, model_seconds, cpu = time_embed(model, spent, big, folder / "big.tif", reader, 0)
                pipeline = (seconds - model_seconds) - (startup - startup_model)
                figures["pipeline"] = max(figures["pipeline"], count / pipeline)
                figures["pipeline per CPU second"] = max(figures["pipeline per CPU second"], count / (cpu - startup_cpu))
                figures["model ms per tile"] = min(figures["model ms per tile"], 1000 * model_seconds / count)
                startup, *_ = time_embed(model, spent, small, folder / "small.tif", reader, 2)
                seconds, *_ = time_embed(model, spent, big, folder / "big.tif", reader, 2)
                figures["end to end"] = max(figures["end to end"], count / (seconds - startup))
            results[name] = {key: round(value, 1) for key, value in figures.items()}
    return results


def scenes_per_hour(processes: int, scenes: int = 4, gpu: bool = False) -> float:
    """Scenes per hour of the 1068 px sample (per-band files) through `spectralgpt-hf embed` in `processes`
    processes, model load and start-up included: the near-free model on the CPU, or with `gpu` the base model
    (768 wide, 12 layers) in bfloat16 with --compile, one GPU per process."""
    from spectralgpt_hf import SpectralGPTConfig, SpectralGPTModel

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = SpectralGPTModel(SpectralGPTConfig(image_size=TILE)) if gpu else near_free_model()
        model.save_pretrained(folder / "model")
        inputs = []
        for index in range(scenes):
            os.symlink(sample_folder(), folder / f"scene{index}")
            inputs += ["--input", str(folder / f"scene{index}")]
        arguments = ["embed", "--model", str(folder / "model"), *inputs, "--output", str(folder / "out"),
                     "--tile", str(TILE), "--overlap", str(OVERLAP), "--quiet"]  # fmt: skip
        if gpu:
            arguments += ["--dtype", "bfloat16", "--compile"]
        if processes == 1:
            command = [sys.executable, "-m", "spectralgpt_hf.cli", *arguments]
        else:
            command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                       str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                       "-m", "spectralgpt_hf.cli", *arguments]  # fmt: skip
        environment = {**os.environ, "OMP_NUM_THREADS": str(max(1, os.cpu_count() // processes))}
        if not gpu:
            environment["ACCELERATE_USE_CPU"] = "true"
        start = time.perf_counter()
        subprocess.run(command, env=environment, check=True, cwd=ROOT, capture_output=True)
        return scenes * 3600 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", choices=["strip", "tile"], default="strip")
    parser.add_argument("--tiles-only", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    parser.add_argument("--gpu", action="store_true", help="scenes per hour only: base model, bf16, --compile, "
                        "on 1 and (with two GPUs) 2 GPUs")  # fmt: skip
    args = parser.parse_args()
    if args.gpu:
        import torch

        counts = (1, 2) if torch.cuda.device_count() >= 2 else (1,)
        figures = {"scenes_per_hour_gpu": {count: scenes_per_hour(count, gpu=True) for count in counts}}
    else:
        figures = {"tiles_per_second": tiles_per_second(args.reader, args.rounds)}
    if not (args.tiles_only or args.gpu):
        figures["scenes_per_hour"] = {processes: scenes_per_hour(processes) for processes in (1, 2)}
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
