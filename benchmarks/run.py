"""Benchmarks of spectralgpt_hf on this machine, written to benchmarks/RESULTS.md.

    python benchmarks/run.py            # everything (about 15 minutes on 2 CPU cores)
    python benchmarks/run.py --quick    # fewer repetitions

Every measurement runs in a fresh subprocess, so that its peak resident memory is its own. Achieved GFLOP/s are
counted analytically from the configuration and compared with the fp32 matmul peak measured in the same run.
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
DATA_DIR = Path(os.environ.get("SPECTRALGPT_TEST_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


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


def case_matmul(repeats: int) -> dict:
    import torch

    size = 2048
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = timed(lambda: a @ b, repeats * 5, min_seconds=2.0)
    return {"gflops": 2 * size**3 / seconds / 1e9}


def base_config(image_size: int, **kwargs):
    from spectralgpt_hf import SpectralGPTConfig

    return SpectralGPTConfig(image_size=image_size, **kwargs)


def case_encoder(repeats, image_size, batch, attention="sdpa", dtype="fp32", compile=False) -> dict:
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

    seconds = timed(forward, repeats if batch < 32 else 1)
    return {
        "images_per_s": batch / seconds,
        "gflops": batch * encoder_flops(config, image_size) / seconds / 1e9,
        "peak_rss_mb": peak_rss_mb(),
    }


def case_pretraining(repeats, image_size, batch) -> dict:
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

    seconds = timed(step, repeats)
    # backward is counted as twice the forward, the usual convention
    return {
        "images_per_s": batch / seconds,
        "gflops": 3 * batch * pretraining_flops(config, image_size) / seconds / 1e9,
        "peak_rss_mb": peak_rss_mb(),
    }


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
    import rasterio
    import torch

    from spectralgpt_hf import SpectralGPTConfig, SpectralGPTForSemanticSegmentation
    from spectralgpt_hf.inference import predict_scene

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
    from spectralgpt_hf.raster import read_bands

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
    "matmul": case_matmul,
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


def cpu_has_bf16() -> bool:
    return cpu_capability().startswith("AVX512") or "amx" in cpu_capability().lower()


def machine_description() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu} ({cpu_capability()}), {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}")  # fmt: skip


def report(quick: bool) -> str:
    peak = run_case("matmul", quick)["gflops"]
    share = lambda result: f"{result['gflops']:.1f} ({100 * result['gflops'] / peak:.0f} %)"  # noqa: E731
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine_description()}. Generated by `python benchmarks/run.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"Measured fp32 matmul peak (2048 x 2048): **{peak:.1f} GFLOP/s**. Shares below are of this peak.",
        "",
        "## Encoder inference (base, 12 bands, sdpa, fp32)",
        "",
        "| image | batch | images/s | GFLOP/s (share of peak) | peak RSS (MB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for image_size in (96, 128):
        for batch in (1, 8, 32):
            result = run_case("encoder", quick, image_size=image_size, batch=batch)
            if "error" in result:
                lines.append(f"| {image_size} | {batch} | failed: {result['error']} | | |")
                continue
            lines.append(f"| {image_size} | {batch} | {result['images_per_s']:.2f} | {share(result)} | "
                         f"{result['peak_rss_mb']:.0f} |")  # fmt: skip
    lines += [
        "",
        "## Encoder variants (base, 128 px, batch 8)",
        "",
        "| attention | precision | torch.compile | images/s | GFLOP/s (share of peak) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for attention, dtype, compile in (
        ("eager", "fp32", False), ("sdpa", "fp32", False), ("sdpa", "bf16", False), ("sdpa", "fp32", True),
    ):  # fmt: skip
        if dtype == "bf16" and not cpu_has_bf16():
            lines.append(f"| {attention} | {dtype} | {compile} | not run: this CPU ({cpu_capability()}) has no bf16 "
                         "arithmetic, so bf16 runs emulated, far slower than fp32 | |")  # fmt: skip
            continue
        result = run_case("encoder", quick, image_size=128, batch=8, attention=attention, dtype=dtype, compile=compile)
        if "error" in result:
            lines.append(f"| {attention} | {dtype} | {compile} | failed: {result['error']} | |")
            continue
        lines.append(f"| {attention} | {dtype} | {compile} | {result['images_per_s']:.2f} | {share(result)} |")
    result = run_case("pretraining", quick, image_size=128, batch=8)
    lines += [
        "",
        "## MAE pretraining step (base, 128 px, batch 8, mask 0.9, AdamW, fp32)",
        "",
        f"{result.get('images_per_s', float('nan')):.2f} images/s, {share(result) if 'gflops' in result else result}"
        " GFLOP/s (forward + backward counted as 3x the forward FLOPs).",
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
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    if args.case:
        print(json.dumps(CASES[args.case](repeats, **json.loads(args.kwargs))))
        return
    text = report(args.quick)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
