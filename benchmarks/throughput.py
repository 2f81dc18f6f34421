"""Training throughput on this machine: the pretraining sample pipeline per core (GeoTIFFs as before, GeoTIFFs and
prepared shards with the new pipeline, the batched variant), `prepare`, and the MAE step (eager and compiled, AdamW
kernels, its profile), written to the "Training throughput" section of benchmarks/RESULTS.md.

    python benchmarks/throughput.py           # about 10 minutes on 2 CPU cores
    python benchmarks/throughput.py --quick   # fewer repetitions, no torch.compile

Each case runs in a fresh process. Data cases run on one thread (images/s per core); each figure is the best of
several timed rounds, because other processes on a shared machine slow some rounds down.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402
    DATA_DIR,
    THROUGHPUT_HEADING,
    base_config,
    machine_description,
    pretraining_flops,
    set_allocator,
    timed_against_peak,
    write_results,
)

H100_BF16_DENSE_TFLOPS = 989.0
REALISTIC_SHARE = 0.4  # of the dense bf16 peak, what large-batch ViT training commonly reaches


def best_rate(function, items: int, rounds: int, seconds: float = 1.0) -> float:
    """Items per second of `function` (which handles `items` items), the best of `rounds` rounds of `seconds`."""
    function()
    best = 0.0
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            function()
            count += 1
        best = max(best, count * items / (time.perf_counter() - start))
    return best


def legacy_sample(config, seed: int):
    """The sample pipeline before prepared shards: image processor on the whole image, then torch's bicubic
    interpolate on the crop, under a forked global generator."""
    import torch

    from spectralgpt_hf.data import RandomResizedCropAndFlip
    from spectralgpt_hf.training.pretraining.data import derived_seed, pretraining_image_processor

    normalization = pretraining_image_processor(config)
    augmentation = RandomResizedCropAndFlip(config.image_size, scale=(0.2, 1.0))

    def prepare(image, key):
        pixel_values = normalization(image, return_tensors="pt")["pixel_values"][0]
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(derived_seed(seed, 0, *key))
            pixel_values = augmentation(pixel_values)
        generator = torch.Generator().manual_seed(derived_seed(seed, 1, *key))
        return {"pixel_values": pixel_values, "noise": torch.rand(config.num_tokens, generator=generator)}

    return prepare


def case_samples(rounds: int, path: str, sources: list[str], shards: str, image_size: int) -> dict:
    import torch

    from spectralgpt_hf.configuration_spectralgpt import SENTINEL2_BANDS
    from spectralgpt_hf.data.shards import RasterRecords, ShardedImages
    from spectralgpt_hf.training.pretraining.data import RawSamplePreparation, SamplePreparation

    torch.set_num_threads(1)
    config = base_config(image_size)
    rasters, images = RasterRecords(sources, SENTINEL2_BANDS), ShardedImages(shards)
    position = iter(range(10**9))
    if path == "geotiff, before":
        prepare = legacy_sample(config, 0)
        return {"rate": best_rate(lambda: prepare(rasters[next(position) % len(rasters)]["bands"], (0, 1)), 1, rounds)}
    if path == "geotiff":
        prepare = SamplePreparation(config, 0)
        return {"rate": best_rate(lambda: prepare(rasters[next(position) % len(rasters)]["bands"], (0, 1)), 1, rounds)}
    if path == "shards":
        prepare = SamplePreparation(config, 0)
        return {"rate": best_rate(lambda: prepare(images[next(position) % len(images)], (0, 1)), 1, rounds)}
    raw, batch = RawSamplePreparation(config, 0), 32

    def worker_batch():
        samples = [raw(images[next(position) % len(images)], (0, index)) for index in range(batch)]
        return torch.utils.data.default_collate(samples)

    collated = worker_batch()
    return {"rate": best_rate(worker_batch, batch, rounds),
            "device_rate_here": best_rate(lambda: raw.augment_batch(collated), batch, rounds)}  # fmt: skip


def case_prepare(rounds: int, sources: list[str], workers: int) -> dict:
    from spectralgpt_hf.configuration_spectralgpt import SENTINEL2_BANDS
    from spectralgpt_hf.data.shards import RasterRecords, prepare

    records = RasterRecords(sources * 4, SENTINEL2_BANDS)
    best = 0.0
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            prepare(records, folder, SENTINEL2_BANDS, samples_per_shard=16, num_workers=workers)
            best = max(best, len(records) / (time.perf_counter() - start))
    return {"rate": best}


def case_mae_step(rounds: int, adamw: str, compile: bool, image_size: int = 128, batch: int = 8) -> dict:
    set_allocator("tuned")
    import torch

    from spectralgpt_hf import SpectralGPTForPreTraining
    from spectralgpt_hf.training.optimization import adamw_kernel_options

    config = base_config(image_size)
    model = SpectralGPTForPreTraining(config).train()
    options = {} if adamw == "default" else adamw_kernel_options("cpu", adamw)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), **options)
    forward = torch.compile(model) if compile else model
    pixel_values = torch.rand(batch, 12, image_size, image_size)

    def step():  # the warm-up call of timed_against_peak compiles
        forward(pixel_values).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    result = timed_against_peak(step, rounds, 3 * batch * pretraining_flops(config, image_size))
    return {**result, "images_per_s": batch / result["seconds"], "flops_per_image": 3 * pretraining_flops(config, image_size)}


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear", "aten::matmul")
ATTENTION_OPS = ("aten::_scaled_dot_product_flash_attention_for_cpu",
                 "aten::_scaled_dot_product_flash_attention_for_cpu_backward")  # fmt: skip


def case_profile(rounds: int, image_size: int = 128, batch: int = 8) -> dict:
    set_allocator("tuned")
    import torch
    from torch.profiler import ProfilerActivity, profile

    from spectralgpt_hf import SpectralGPTForPreTraining

    model = SpectralGPTForPreTraining(base_config(image_size)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **{"fused": True})
    pixel_values = torch.rand(batch, 12, image_size, image_size)

    def step():
        model(pixel_values).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step()
    events = [event for event in profiler.key_averages() if event.self_cpu_time_total > 0]
    total = sum(event.self_cpu_time_total for event in events)
    matmul = sum(event.self_cpu_time_total for event in events if event.key in MATMUL_OPS)
    attention = sum(event.self_cpu_time_total for event in events if event.key in ATTENTION_OPS)
    others = sorted((event for event in events if event.key not in MATMUL_OPS + ATTENTION_OPS),
                    key=lambda event: -event.self_cpu_time_total)  # fmt: skip
    return {"matmul_share": matmul / total, "attention_share": attention / total,
            "others": [(event.key, event.self_cpu_time_total / total) for event in others[:8]]}  # fmt: skip


CASES = {"samples": case_samples, "prepare": case_prepare, "mae_step": case_mae_step, "profile": case_profile}


def run_case(name: str, **kwargs) -> dict:
    command = [sys.executable, __file__, "--case", name, "--kwargs", json.dumps(kwargs)]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        result = {"error": completed.stderr.strip().splitlines()[-1] if completed.stderr else "failed"}
    else:
        result = json.loads(completed.stdout.strip().splitlines()[-1])
    # Progress on stderr, so that a run cut short still leaves its figures in the log.
    settings = {key: value for key, value in kwargs.items() if key not in ("sources", "shards")}
    print(f"[{time.perf_counter() - start:.0f} s] {name} {settings}: {result}", file=sys.stderr, flush=True)
    return result


def tiles(folder: Path, size: int = 128, count: int = 16) -> list[str]:
    """`count` stacked uint16 tiles of `size` px cut from the Major-TOM scene: pretraining tiles as stored."""
    import numpy as np
    from rasterio.windows import Window

    from spectralgpt_hf import geo

    scene = glob.glob(str(DATA_DIR / "major_tom_s2l2a" / "*" / "*" / "*"))[0]
    paths = []
    with geo.open_scene(scene) as opened:
        for index in range(count):
            bands = opened.read(Window(size * (index % 8), size * (index // 8), size, size))
            path = folder / f"tile_{index:02d}.tif"
            data = np.rint(np.nan_to_num(bands.data)).astype(np.uint16)
            geo.write_geotiff(path, data, bands.crs, bands.transform, band_descriptions=bands.band_names)
            paths.append(str(path))
    return paths


def report(quick: bool) -> str:
    from spectralgpt_hf.configuration_spectralgpt import SENTINEL2_BANDS
    from spectralgpt_hf.data.shards import RasterRecords, prepare

    rounds = 3 if quick else 7
    lines = [f"{THROUGHPUT_HEADING} (pretraining data and MAE step)", "",
             f"Generated by `python benchmarks/throughput.py{' --quick' * quick}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({machine_description()}), load average "
             f"{os.getloadavg()[0]:.1f} at the start. Data figures: one thread, best of {rounds} rounds of 1 s (the "
             "machine was shared; other rounds were slower).", ""]  # fmt: skip
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        sources = {
            "BigEarthNet, 12 band files of 120 px": sorted(glob.glob(str(DATA_DIR / "bigearthnet_s2" / "*" / "*"))),
            "stacked uint16 tiles of 128 px": tiles(workdir),
        }
        shards, rates = {}, {}
        for number, (name, paths) in enumerate(sources.items()):
            shards[name] = str(workdir / f"shards_{number}")
            prepare(RasterRecords(paths, SENTINEL2_BANDS), shards[name], SENTINEL2_BANDS, samples_per_shard=8)
        lines += ["### Sample pipeline (decode, min-max, random resized crop, flip, mask noise), images/s per core", "",
                  "| source | output | GeoTIFF, before | GeoTIFF, now | prepared shards | batched: CPU part | "
                  "batched: crops on this CPU |", "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for name, paths in sources.items():
            for size in (96, 128):
                cells = []
                for path in ("geotiff, before", "geotiff", "shards", "batched"):
                    result = run_case("samples", rounds=rounds, path=path, sources=paths, shards=shards[name],
                                      image_size=size)  # fmt: skip
                    cells.append(f"{result['rate']:.0f}" if "rate" in result else f"failed: {result['error']}")
                    rates[name, size, path] = result.get("rate")
                    if path == "batched":
                        cells.append(f"{result['device_rate_here']:.0f}" if "rate" in result else "")
                lines.append(f"| {name} | {size} | " + " | ".join(cells) + " |")
        lines += ["", "### prepare, images/s", "", "| source | 1 worker | 2 workers |", "| --- | --- | --- |"]
        for name, paths in sources.items():
            prepared = [run_case("prepare", rounds=min(rounds, 3), sources=paths, workers=workers) for workers in (1, 2)]
            lines.append(f"| {name} | " + " | ".join(f"{rate.get('rate', 0):.0f}" for rate in prepared) + " |")
    lines += ["", "### MAE step (base, 128 px, batch 8, mask 0.9, fp32, 2 threads)", "",
              "| AdamW | torch.compile | images/s | GFLOP/s | peak alongside | share of peak |",
              "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    steps = {}
    variants = [("default", False), ("foreach", False), ("fused", False)] + ([] if quick else [("fused", True)])
    for adamw, compile in variants:
        result = steps[adamw, compile] = run_case("mae_step", rounds=1 if quick else 3, adamw=adamw, compile=compile)
        if "error" in result:
            lines.append(f"| {adamw} | {compile} | failed: {result['error']} | | | |")
            continue
        lines.append(f"| {adamw} | {compile} | {result['images_per_s']:.2f} | {result['gflops']:.1f} | "
                     f"{result['peak_gflops']:.1f} | **{100 * result['share']:.0f} %** |")  # fmt: skip
    profile = run_case("profile", rounds=1)
    if "error" not in profile:
        others = ", ".join(f"{name} {100 * share:.1f} %" for name, share in profile["others"])
        lines += ["", f"Profile of one eager step (self CPU time): matmuls {100 * profile['matmul_share']:.0f} %, "
                  f"attention (sdpa, forward and backward) {100 * profile['attention_share']:.0f} %; the largest "
                  f"others: {others}."]  # fmt: skip
    flops = next((result["flops_per_image"] for result in steps.values() if "flops_per_image" in result), None)
    if flops is not None:
        demand = H100_BF16_DENSE_TFLOPS * 1e12 * REALISTIC_SHARE / flops
        lines += ["", "### What one GPU demands", "",
                  f"One MAE step costs {flops / 1e9:.1f} GFLOP per 128 px image (forward + backward, counted as "
                  f"above). An H100 at {100 * REALISTIC_SHARE:.0f} % of its {H100_BF16_DENSE_TFLOPS:.0f} TFLOP/s dense "
                  f"bf16 peak would step **{demand:,.0f} images/s**. Data cores it needs (at the per-core rates "
                  "above, 128 px; the batched variant leaves the crops to the GPU):", ""]  # fmt: skip
        for name in sources:
            needs = [f"{label} {demand / rates[name, 128, path]:.1f}" for path, label in
                     (("geotiff, before", "GeoTIFF before"), ("geotiff", "GeoTIFF now"), ("shards", "shards"),
                      ("batched", "shards, batched")) if rates.get((name, 128, path))]  # fmt: skip
            lines.append(f"* {name}: " + ", ".join(needs) + " cores.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no torch.compile")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(CASES[args.case](**json.loads(args.kwargs))))
        return
    text = report(args.quick)
    write_results(throughput=text)
    print(text)


if __name__ == "__main__":
    main()
