"""Benchmarks of spectralgpt_hf on this machine, written to benchmarks/RESULTS.md.

    python benchmarks/run.py            # everything (about 20 minutes on 2 CPU cores)
    python benchmarks/run.py --quick    # fewer repetitions

Every measurement runs in a fresh subprocess, so that its peak resident memory is its own. Achieved GFLOP/s are
counted analytically from the configuration and compared with the fp32 matmul peak measured in the same process,
in bursts alternating with the timed calls: a shared or turbo-clocked CPU changes speed from second to second, and
both figures must see the same speed. Model cases run with `keep_freed_memory_for_reuse()`, as the command line and
scripts do (see spectralgpt_hf/allocator.py), unless `allocator` is "default".
"""

import argparse
import glob
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The full sample data (the 1068 x 1068 px Major-TOM scene, not the tests' crop): SPECTRALGPT_SHARED/data, by
# default ../shared/data beside the clone.
DATA_DIR = Path(os.environ.get("SPECTRALGPT_SHARED") or ROOT.parent / "shared") / "data"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
GPU_HEADING = "## GPU: "  # benchmarks/gpu.py writes one such section per device, after the CPU results
THROUGHPUT_HEADING = "## Training throughput"  # benchmarks/throughput.py's section, after this script's


def write_results(cpu: str | None = None, gpu: str | None = None, throughput: str | None = None) -> None:
    """Replaces the CPU results, the training-throughput section or one device's GPU section of RESULTS.md,
    keeping the rest, in one atomic write."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    cpu_part, *gpu_parts = text.split("\n" + GPU_HEADING)
    cpu_part, *throughput_part = cpu_part.split("\n" + THROUGHPUT_HEADING)
    kept_throughput = THROUGHPUT_HEADING + throughput_part[0].rstrip("\n") if throughput_part else None
    throughput = throughput.rstrip("\n") if throughput is not None else kept_throughput
    sections = {part.splitlines()[0]: GPU_HEADING + part.rstrip("\n") for part in gpu_parts}
    if gpu is not None:
        sections[gpu.splitlines()[0].removeprefix(GPU_HEADING)] = gpu.rstrip("\n")
    cpu_text = (cpu if cpu is not None else cpu_part).rstrip("\n")
    text = "\n\n".join([cpu_text, *([throughput] if throughput else []), *sections.values()]) + "\n"
    partial = RESULTS.with_suffix(".md.partial")
    partial.write_text(text)
    os.replace(partial, RESULTS)


# FLOP counts (a multiply-add is 2 FLOPs) ---------------------------------------------------------------------


def transformer_flops(tokens: int, hidden: int, intermediate: int, layers: int) -> float:
    """Forward FLOPs of `layers` pre-norm blocks over `tokens` tokens: q, k, v, output and MLP projections plus
    the two attention matmuls (norms, softmax and activations are not counted)."""
    projections = 2 * tokens * hidden * (4 * hidden + 2 * intermediate)
    attention = 2 * 2 * tokens * tokens * hidden
    return layers * (projections + attention)


def encoder_flops(config, image_size: int, visible_tokens: int | None = None) -> float:
    tokens = config.num_spectral_groups * (image_size // config.patch_size) ** 2
    tokenizer = 2 * tokens * config.hidden_size * config.spectral_patch_size * config.patch_size**2
    kept = tokens if visible_tokens is None else visible_tokens
    return tokenizer + transformer_flops(kept, config.hidden_size, config.intermediate_size, config.num_hidden_layers)


def pretraining_flops(config, image_size: int) -> float:
    """Forward FLOPs of one MAE step per image: tokenizer over all tokens, encoder on the visible ones, decoder
    embedding, blocks and prediction over all tokens."""
    tokens = config.num_spectral_groups * (image_size // config.patch_size) ** 2
    visible = int(tokens * (1 - config.mask_ratio))
    decoder = transformer_flops(
        tokens, config.decoder_hidden_size, config.decoder_intermediate_size, config.decoder_num_hidden_layers
    )
    embed_and_predict = 2 * visible * config.hidden_size * config.decoder_hidden_size + 2 * tokens * (
        config.decoder_hidden_size * config.spectral_patch_size * config.patch_size**2
    )
    return encoder_flops(config, image_size, visible) + decoder + embed_and_predict


# Cases (each runs in its own process) ------------------------------------------------------------------------


def timed(function, repeats: int, min_seconds: float = 0.0) -> float:
    """Seconds per call: one warm-up, then at least `repeats` calls and `min_seconds`."""
    function()
    count, start = 0, time.perf_counter()
    while count < repeats or time.perf_counter() - start < min_seconds:
        function()
        count += 1
    return (time.perf_counter() - start) / count


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(seconds: float) -> float:
    """fp32 GFLOP/s of 2048 x 2048 matmuls sustained over `seconds`: the machine's peak."""
    import torch

    size = 2048
    a, b = torch.randn(size, size), torch.randn(size, size)
    count, start = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start) / 1e9


def timed_against_peak(function, repeats: int, flops_per_call: float) -> dict:
    """One warm-up call, then `repeats` calls, each followed by a matmul burst as long as the call (1 to 10 s).
    Returns seconds per call, achieved GFLOP/s, the mean peak of the bursts and the share of it."""
    function()
    seconds, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
        peaks.append(matmul_gflops(min(max(seconds[-1], 1.0), 10.0)))
    per_call, peak = sum(seconds) / repeats, sum(peaks) / repeats
    gflops = flops_per_call / per_call / 1e9
    return {"seconds": per_call, "gflops": gflops, "peak_gflops": peak, "share": gflops / peak}


def set_allocator(allocator: str) -> None:
    from spectralgpt_hf.utils.allocator import keep_freed_memory_for_reuse

    if allocator == "tuned" and not keep_freed_memory_for_reuse():
        raise RuntimeError("keep_freed_memory_for_reuse() did not apply on this system")


def base_config(image_size: int, **kwargs):
    from spectralgpt_hf import SpectralGPTConfig

    return SpectralGPTConfig(image_size=image_size, **kwargs)


def case_encoder(repeats, image_size, batch, attention="sdpa", dtype="fp32", compile=False, allocator="tuned"):
    set_allocator(allocator)
    import torch

    from spectralgpt_hf import SpectralGPTModel

    config = base_config(image_size, attn_implementation=attention)
    model = SpectralGPTModel(config).eval()
    if compile:
        model = torch.compile(model)
    pixel_values = torch.rand(batch, 12, image_size, image_size)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")

    def forward():
        with torch.inference_mode(), autocast:
            model(pixel_values)

    result = timed_against_peak(forward, repeats, batch * encoder_flops(config, image_size))
    return {**result, "images_per_s": batch / result["seconds"], "peak_rss_mb": peak_rss_mb()}


def case_pretraining(repeats, image_size, batch, allocator="tuned") -> dict:
    set_allocator(allocator)
    import torch

    from spectralgpt_hf import SpectralGPTForPreTraining

    config = base_config(image_size)
    model = SpectralGPTForPreTraining(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    pixel_values = torch.rand(batch, 12, image_size, image_size)

    def step():
        model(pixel_values).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # backward is counted as twice the forward, the usual convention
    result = timed_against_peak(step, repeats, 3 * batch * pretraining_flops(config, image_size))
    return {**result, "images_per_s": batch / result["seconds"], "peak_rss_mb": peak_rss_mb()}


def mosaic(scene: str, folder: Path, copies: int = 2) -> str:
    """A (copies x copies) mosaic of a per-band scene folder, on a grid continuing the scene's."""
    import numpy as np
    import rasterio

    folder.mkdir(parents=True, exist_ok=True)
    for band in sorted(glob.glob(os.path.join(scene, "B*.tif"))):
        with rasterio.open(band) as source:
            data, profile = source.read(1), source.profile
        profile.update(height=data.shape[0] * copies, width=data.shape[1] * copies)
        with rasterio.open(folder / os.path.basename(band), "w", **profile) as destination:
            destination.write(np.tile(data, (copies, copies)), 1)
    return str(folder)


def case_scene(repeats, source) -> dict:
    set_allocator("tuned")
    import rasterio
    import torch

    from spectralgpt_hf import SpectralGPTConfig, SpectralGPTForSemanticSegmentation
    from spectralgpt_hf.inference.scene import predict_scene

    with tempfile.TemporaryDirectory() as workdir:
        torch.manual_seed(0)
        config = SpectralGPTConfig(
            hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768, num_labels=13,
            neck_intermediate_sizes=[64, 64, 128, 128], neck_hidden_sizes=[32, 64, 128, 128], neck_norm_groups=8,
            decode_head_hidden_size=32, decode_head_norm_groups=8,
        )  # fmt: skip
        model = SpectralGPTForSemanticSegmentation(config)
        output = Path(workdir) / "classes.tif"
        start = time.perf_counter()
        predict_scene(model, source, output, tile=128, overlap=32, batch_size=8, progress=False)
        seconds = time.perf_counter() - start
        with rasterio.open(output) as result:
            pixels = result.width * result.height
    return {"megapixels_per_s": pixels / seconds / 1e6, "seconds": seconds, "pixels": pixels,
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def case_data(repeats) -> dict:
    import torch

    from spectralgpt_hf.image_processing_spectralgpt import SpectralGPTImageProcessor
    from spectralgpt_hf.geo import read_bands

    torch.set_num_threads(1)
    eurosat = sorted(glob.glob(str(DATA_DIR / "eurosat_ms" / "*" / "*.tif")))
    bigearthnet = glob.glob(str(DATA_DIR / "bigearthnet_s2" / "*" / "*"))[0]
    results = {}
    for name, source, processor, options in (
        ("eurosat (stacked 13-band file, 64 px)", eurosat[0], SpectralGPTImageProcessor.for_eurosat(),
         {"file_band_order": "eurosat_ms"}),
        ("bigearthnet (12 per-band files, 120 px)", bigearthnet, SpectralGPTImageProcessor.for_bigearthnet(), {}),
    ):  # fmt: skip

        def load():
            processor(read_bands(source, **options).data, return_tensors="pt")

        results[name] = 1 / timed(load, repeats * 10, min_seconds=2.0)
    return {"images_per_s_per_core": results}


CASES = {
    "encoder": case_encoder,
    "pretraining": case_pretraining,
    "scene": case_scene,
    "data": case_data,
}


def run_case(name: str, quick: bool, **kwargs) -> dict:
    """Runs one case in a fresh interpreter and returns its JSON result."""
    command = [sys.executable, __file__, "--case", name, "--kwargs", json.dumps(kwargs)] + (["--quick"] * quick)
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1] if completed.stderr else "failed"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def cpu_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def cpu_info(field: str) -> str:
    """A field of /proc/cpuinfo for the first core ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.split(":")[0].strip() == field), "")
    except OSError:
        return ""


def cpu_has_bf16() -> bool:
    """Whether the CPU has bf16 arithmetic (AVX512-BF16 or AMX); elsewhere PyTorch emulates it, far below fp32."""
    flags = cpu_info("flags").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def machine_description() -> str:
    import torch

    cpu = cpu_info("model name") or platform.processor() or platform.machine()
    return (f"{cpu} ({cpu_capability()}), {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")  # fmt: skip


def report(quick: bool) -> str:
    peaks = []

    def measured(result: dict) -> str:
        """images/s | GFLOP/s | peak | share, or the error across those columns."""
        if "error" in result:
            return f"failed: {result['error']} | | |"
        peaks.append(result["peak_gflops"])
        return (f"{result['images_per_s']:.2f} | {result['gflops']:.1f} | {result['peak_gflops']:.1f} | "
                f"**{100 * result['share']:.0f} %**")  # fmt: skip

    lines = [
        "## Encoder inference (base, 12 bands, sdpa, fp32)",
        "",
        "| image | batch | images/s | GFLOP/s | peak GFLOP/s alongside | share of peak | peak RSS (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    encoder = {}
    for image_size in (96, 128):
        for batch in (1, 8, 32):
            result = encoder[image_size, batch] = run_case(
                "encoder", quick, image_size=image_size, batch=batch, repeats=1 if batch == 32 else None
            )
            lines.append(f"| {image_size} | {batch} | {measured(result)} | {result.get('peak_rss_mb', 0):.0f} |")
    lines += [
        "",
        "## Encoder variants (base, 128 px, batch 8)",
        "",
        "The first row is the batch-8 row above; the allocator is `keep_freed_memory_for_reuse()` (tuned) or glibc's",
        "default.",
        "",
        "| attention | precision | torch.compile | allocator | images/s | GFLOP/s | peak alongside | share |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| sdpa | fp32 | False | tuned | {measured(encoder[128, 8])} |",
    ]
    for attention, dtype, compile, allocator in (
        ("sdpa", "fp32", False, "default"), ("eager", "fp32", False, "tuned"), ("sdpa", "bf16", False, "tuned"),
        ("sdpa", "fp32", True, "tuned"),
    ):  # fmt: skip
        row = f"| {attention} | {dtype} | {compile} | {allocator} |"
        if dtype == "bf16" and not cpu_has_bf16():
            lines.append(f"{row} not run: this CPU ({cpu_capability()}) has no bf16 arithmetic, so bf16 runs "
                         "emulated, far slower than fp32 | | | |")  # fmt: skip
            continue
        result = run_case(
            "encoder", quick, image_size=128, batch=8, attention=attention, dtype=dtype, compile=compile,
            allocator=allocator,
        )  # fmt: skip
        lines.append(f"{row} {measured(result)} |")
    lines += [
        "",
        "## MAE pretraining step (base, 128 px, batch 8, mask 0.9, AdamW, fp32)",
        "",
        "Forward + backward counted as 3x the forward FLOPs.",
        "",
        "| allocator | images/s | GFLOP/s | peak GFLOP/s alongside | share of peak | peak RSS (MB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for allocator in ("tuned", "default"):
        result = run_case("pretraining", quick, image_size=128, batch=8, allocator=allocator)
        lines.append(f"| {allocator} | {measured(result)} | {result.get('peak_rss_mb', 0):.0f} |")
    lines += [
        "",
        "## Whole-scene segmentation (Major-TOM scene, tile 128, overlap 32, batch 8)",
        "",
        "A small segmentation model (192-wide 4-block encoder, neck and head 8 to 16 times narrower than SegMunich's)",
        "keeps the CPU run short: this measures the tiling pipeline and its memory, not the model.",
        "",
        "| scene | pixels | megapixels/s | peak RSS (MB) |",
        "| --- | --- | --- | --- |",
    ]
    scene = glob.glob(str(DATA_DIR / "major_tom_s2l2a" / "*" / "*" / "*"))[0]
    with tempfile.TemporaryDirectory() as workdir:  # the mosaic is made here, outside the measured process
        sources = {1: scene, 2: mosaic(scene, Path(workdir) / "mosaic", copies=2)}
        scenes = {copies: run_case("scene", quick, source=source) for copies, source in sources.items()}
    for copies, result in scenes.items():
        label = "1068 x 1068 scene" if copies == 1 else "2136 x 2136 mosaic (4x)"
        lines.append(f"| {label} | {result['pixels']:,} | {result['megapixels_per_s']:.3f} | "
                     f"{result['peak_rss_mb']:.0f} |")  # fmt: skip
    ratio = scenes[2]["peak_rss_mb"] / scenes[1]["peak_rss_mb"]
    lines += ["", f"Peak RSS of the 4x mosaic / the single scene: **{ratio:.2f}** (target: at most 1.2)."]
    data = run_case("data", quick)["images_per_s_per_core"]
    lines += ["", "## Data path (GeoTIFF decode + image processor, one thread)", "", "| source | images/s per core |",
              "| --- | --- |"]  # fmt: skip
    lines += [f"| {name} | {value:.1f} |" for name, value in data.items()]
    header = [
        "# Benchmarks",
        "",
        f"Machine: {machine_description()}. Generated by `python benchmarks/run.py{' --quick' * quick}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Method and findings: benchmarks/README.md.",
        "",
        "Shares are of the fp32 matmul peak (2048 x 2048) measured in bursts alternating with each case's timed calls;",
        f"those peaks ranged from {min(peaks, default=0):.0f} to {max(peaks, default=0):.0f} GFLOP/s over this run.",
        "",
    ]
    return "\n".join(header + lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    if args.case:
        kwargs = json.loads(args.kwargs)
        repeats = kwargs.pop("repeats", None) or repeats
        print(json.dumps(CASES[args.case](repeats, **kwargs)))
        return
    text = report(args.quick)
    write_results(cpu=text)
    print(text)


if __name__ == "__main__":
    main()
