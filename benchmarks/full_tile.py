"""One full 10980 x 10980 px Sentinel-2 tile through `embed_scene`, end to end: time, peak memory, BigTIFF output.

    python benchmarks/full_tile.py --work /tmp/full_tile            # a quarter tile, then the full tile
    python benchmarks/full_tile.py --work /tmp/full_tile --sizes 2745  # one size only
    python benchmarks/full_tile.py --work /tmp/full_tile --keep     # keep the outputs (about 6 GB for a full tile)

The tile is a stand-in: a 12-band VRT on the 10 m grid that mosaics copies of the real Major-TOM sample (1068 px
at 10 m; its 20 m and 60 m bands resampled to 10 m by the VRT, nearest), cropped to the size asked, with band
descriptions, so it is read by windows as one stacked file. The model is a 1-block encoder that still has
768-wide embeddings (12 heads, MLP 64 wide, one spectral group of all 12 bands, untrained), run on 64 px tiles
without overlap (64 tokens a tile) so that a full tile takes well under an hour on 2 shared cores. Each size runs
in a fresh subprocess, so its peak RSS (`ru_maxrss`) is its own; RSS is also sampled every 5 s. The embeddings of
a full tile are 1372 x 1372 x 768 float32 (5.8 GB): the output must be a BigTIFF COG, and a window at its far
corner is read back. Prints the figures as JSON; writes nothing into the repository (`--work` holds the VRTs and
outputs, removed at the end). SPECTRALGPT_SHARED names the shared folder (default: ../shared).
"""

import argparse
import glob
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SPECTRALGPT_SHARED", ROOT.parent / "shared")) / "data"
FULL_TILE = 10980
SAMPLE_PIXELS = 1068  # the Major-TOM sample at 10 m
TILE, OVERLAP, BATCH = 64, 0, 16


def sample_folder() -> Path:
    return Path(glob.glob(str(DATA_DIR / "major_tom_s2l2a" / "*" / "*" / "*"))[0])


def write_mosaic_vrt(path: Path, size: int) -> Path:
    """A 12-band, 10 m VRT of `size` x `size` px tiling copies of the sample (top-left copy at the sample's place)."""
    import rasterio

    from spectralgpt_hf.configuration_spectralgpt import SENTINEL2_BANDS

    source = sample_folder()
    with rasterio.open(source / "B02.tif") as reference:
        transform, crs = reference.transform, reference.crs
    copies = -(-size // SAMPLE_PIXELS)
    bands = []
    for index, name in enumerate(SENTINEL2_BANDS, start=1):
        band_file = source / f"{name}.tif"
        with rasterio.open(band_file) as dataset:
            width = dataset.width
        sources = []
        for row in range(copies):
            for col in range(copies):
                sources.append(
                    f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(str(band_file))}</SourceFilename>'
                    f"<SourceBand>1</SourceBand>"
                    f'<SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{width}"/>'
                    f'<DstRect xOff="{col * SAMPLE_PIXELS}" yOff="{row * SAMPLE_PIXELS}" '
                    f'xSize="{SAMPLE_PIXELS}" ySize="{SAMPLE_PIXELS}"/></SimpleSource>'
                )
        bands.append(
            f'<VRTRasterBand dataType="UInt16" band="{index}"><Description>{name}</Description>'
            + "".join(sources)
            + "</VRTRasterBand>"
        )
    geotransform = ", ".join(repr(value) for value in transform.to_gdal())
    path.write_text(
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{escape(crs.to_wkt())}</SRS>'
        f"<GeoTransform>{geotransform}</GeoTransform>" + "".join(bands) + "</VRTDataset>"
    )
    return path


def cheap_768_model():
    import torch

    from spectralgpt_hf import SpectralGPTConfig, SpectralGPTModel

    torch.manual_seed(0)
    config = SpectralGPTConfig(
        image_size=TILE, hidden_size=768, num_hidden_layers=1, num_attention_heads=12, intermediate_size=64,
        spectral_patch_size=12,
    )
    return SpectralGPTModel(config).eval()


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_one(size: int, work: Path, keep: bool) -> dict:
    """In this process: embed a `size` px mosaic, check the output, return the figures."""
    import numpy as np
    import rasterio
    import torch
    from rasterio.windows import Window

    from spectralgpt_hf import keep_freed_memory_for_reuse
    from spectralgpt_hf.geo.cog import cog_layout_errors
    from spectralgpt_hf.inference.scene import embed_scene

    keep_freed_memory_for_reuse()  # as the command line does
    torch.set_num_threads(max(1, os.cpu_count()))
    work.mkdir(parents=True, exist_ok=True)
    vrt = write_mosaic_vrt(work / f"mosaic_{size}.vrt", size)
    output = work / f"embeddings_{size}.tif"
    model = cheap_768_model()
    samples, stop = [], threading.Event()
    start = time.perf_counter()

    def sample_rss() -> None:
        while not stop.wait(5.0):
            samples.append((round(time.perf_counter() - start, 1), round(current_rss_mb())))

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    try:
        embed_scene(model, vrt, output, tile=TILE, overlap=OVERLAP, batch_size=BATCH, progress=False)
    finally:
        stop.set()
        sampler.join()
    seconds = time.perf_counter() - start
    with open(output, "rb") as handle:
        version = int.from_bytes(handle.read(4)[2:4], "little")
    with rasterio.open(output) as dataset:
        corner = Window(dataset.width - 64, dataset.height - 64, 64, 64)
        values = dataset.read(window=corner)
        figures = {
            "size_px": size,
            "embedding_shape": [dataset.count, dataset.height, dataset.width],
            "embedding_bytes_float32": dataset.count * dataset.height * dataset.width * 4,
            "file_bytes": output.stat().st_size,
            "bigtiff": version == 43,
            "cog_layout_errors": cog_layout_errors(output, require_overviews=False),  # embeddings: none
            "far_corner_window_finite": bool(np.isfinite(values).all()),
            "far_corner_window_std": float(values.std()),
            "overviews": dataset.overviews(1),
        }
    figures.update(
        seconds=round(seconds, 1),
        megapixels_per_second=round(size * size / seconds / 1e6, 4),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        rss_samples_mb=samples,
    )
    if not keep:
        output.unlink()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the VRTs and outputs (not the repo)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[FULL_TILE // 4, FULL_TILE])
    parser.add_argument("--keep", action="store_true", help="keep the embedding files")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the subprocess for one size
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.work, args.keep)))
        return
    results = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--work", str(args.work), "--one", str(size)]
        if args.keep:
            command.append("--keep")
        completed = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    if len(results) > 1:
        small, large = results[0], results[-1]
        print(json.dumps({
            "pixels_ratio": round(large["size_px"] ** 2 / small["size_px"] ** 2, 2),
            "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        }))  # fmt: skip
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
