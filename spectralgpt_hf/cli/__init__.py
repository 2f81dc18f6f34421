"""The `spectralgpt-hf` command line."""

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path

from ..utils.allocator import keep_freed_memory_for_reuse
from .errors import DEBUG_VARIABLE, UsageError, cli_wording, debugging, log_the_library, report_errors
from .parsing import ArgumentParser


def convert(args: argparse.Namespace) -> None:
    from ..convert_original_checkpoint import convert_original_checkpoint

    model = convert_original_checkpoint(args.checkpoint, args.output_dir, kind=args.kind)
    print(f"Wrote {type(model).__name__} ({model.num_parameters():,} parameters) to {args.output_dir}")
    if args.push_to_hub:
        from ..hub import push_converted_checkpoint

        commit = push_converted_checkpoint(
            model, args.checkpoint, args.push_to_hub, base_model=args.base_model, private=args.private
        )
        print(f"Uploaded to {commit.commit_url}")


def publish(args: argparse.Namespace) -> None:
    from ..hub import push_to_hub

    processor = None
    if args.image_processor:
        from ..image_processing_spectralgpt import SpectralGPTImageProcessor

        processor = SpectralGPTImageProcessor.from_pretrained(args.image_processor)
    commit = push_to_hub(
        args.model_dir, args.repo_id, image_processor=processor, base_model=args.base_model, private=args.private
    )
    print(f"Uploaded {args.model_dir} to {commit.commit_url}")


def add_hub_command(commands, debug: ArgumentParser, name: str, help: str, handler, positionals: dict[str, str]):
    """A command that uploads to the Hub: its positional arguments, `--private` and `--base-model`; returns its
    parser for the command's own flags."""
    parser = commands.add_parser(name, parents=[debug], help=help)
    for positional, text in positionals.items():
        parser.add_argument(positional, help=text)
    parser.add_argument(
        "--private", action="store_true", default=None, help="create the Hub repository private (default: the Hub's)"
    )
    parser.add_argument(
        "--base-model", help="Hub repository the model was fine-tuned from, for the card (default for the published "
        "downstream files: <namespace>/spectralgpt-plus)",
    )  # fmt: skip
    parser.set_defaults(handler=handler)
    return parser


def checked_device(name: str | None) -> str:
    """`--device`, default cuda when available (cuda:LOCAL_RANK in each process of a multi-GPU launch); refuses a
    device this torch build or machine lacks."""
    import torch

    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name} is not a torch device; use cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        reason = "no CUDA GPU is visible" if torch.backends.cuda.is_built() else "this torch build has no CUDA support"
        raise UsageError(f"--device {name}: {reason}; use --device cpu (or leave --device out).")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: MPS is not available here; use --device cpu (or leave --device out).")
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        # Under `accelerate launch` (or torchrun) each process takes the GPU of its local rank, as Accelerate does.
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return name


# a file name's extension (".png"), not a dot inside a folder's name ("run.v2")
FILE_SUFFIX = re.compile(r"\.[A-Za-z]{2,5}$")


def check_output(output: str, scenes: int) -> None:
    """`--output` is a GeoTIFF path (one scene) or a folder; never silently another format."""
    suffix = Path(output).suffix.lower()
    if suffix in (".tif", ".tiff"):
        if scenes > 1:
            raise UsageError(
                f"--output {output} names one GeoTIFF but {scenes} scenes were given; give a folder for the outputs "
                "(one <scene id>.tif per scene)."
            )
    elif FILE_SUFFIX.search(Path(output).name) and not Path(output).is_dir():
        raise UsageError(
            f"--output {output}: the outputs are GeoTIFFs; give a .tif path (one scene) or a folder (one .tif per "
            "scene and index.jsonl)."
        )


def check_model_for_task(model, source: str, task: str, jobs) -> None:
    """Refuses a model that cannot do `task` with these inputs, naming the flag or command that can."""
    kind = type(model).__name__
    two_dates = any(job.input_2 for job in jobs)
    if task == "predict" and kind in ("SpectralGPTForPreTraining", "SpectralGPTModel"):
        raise UsageError(
            f"{source} is a {kind}, a pretraining model with no classes to predict: use `spectralgpt-hf embed` for "
            "its per-patch embeddings, or give a fine-tuned model to predict with."
        )
    if task == "predict" and kind.endswith("ChangeDetection") and not all(job.input_2 for job in jobs):
        raise UsageError(
            f"{source} is a change-detection model, which compares two dates: give the second date of each scene "
            "with --input2 (aligned with --input), or the pairs with --pairs."
        )
    if two_dates and not kind.endswith("ChangeDetection"):
        raise UsageError(
            f"{source} is a {kind}, which reads one date; --input2 and --pairs are for change-detection models. "
            "Leave them out."
        )


def file_band_order(value: str | None):
    """`--file-band-order`: a dataset key (eurosat_ms) or comma-separated band names."""
    from ..geo import DATASET_BAND_ORDERS

    if value is None or value.lower() in DATASET_BAND_ORDERS:
        return value
    return [name.strip() for name in value.split(",")]


def predict(args: argparse.Namespace) -> None:
    run_scene_command(args, "predict")


def embed(args: argparse.Namespace) -> None:
    run_scene_command(args, "embed")


def run_scene_command(args: argparse.Namespace, task: str) -> None:
    """One scene to one GeoTIFF (`--output x.tif`), or many scenes into the folder `--output`, resumable and
    sharded across the processes of `accelerate launch`; exits non-zero when a scene failed. Flags are checked
    against each other and the model before any scene is read."""
    from ..inference import runs
    from ..inference.scene import scene_tiling
    from ..loading import load_image_processor, load_model

    if args.quiet:
        from transformers.utils.logging import disable_progress_bar

        disable_progress_bar()  # transformers' "Loading weights" bar
    check_output(args.output, 1)
    device = checked_device(args.device)
    jobs = scene_command_jobs(args)
    check_output(args.output, len(jobs))
    model = load_model(args.model)
    check_model_for_task(model, args.model, task, jobs)
    try:
        tile, overlap = scene_tiling(model.config, args.tile, args.overlap, aligned=task == "embed")
    except ValueError as error:
        raise UsageError(f"--tile / --overlap: {error}") from None
    model = runs.prepare_model(model.to(device), dtype=args.dtype, compile=args.compile, task=task)
    options = dict(
        processor=load_image_processor(args.model), tile=tile, overlap=overlap, batch_size=args.batch_size,
        **product_options(args), **scene_open_options(args),
    )  # fmt: skip
    if getattr(args, "geoparquet", None):
        if len(jobs) > 1:
            raise ValueError("--geoparquet names one file: use it with a single scene.")
        options["geoparquet"] = args.geoparquet
    single = len(jobs) == 1 and args.output.lower().endswith((".tif", ".tiff"))
    if single:
        second = {"input_2": jobs[0].input_2} if jobs[0].input_2 else {}
        output = runs.TASKS[task](model, jobs[0].input, args.output, progress=not args.quiet, **second, **options)
        print(f"Wrote {output}")
        return
    index = runs.run_scenes(
        model, jobs, args.output, task=task, overwrite=args.overwrite, on_error=args.on_error,
        progress=not args.quiet, **options,
    )  # fmt: skip
    counts = {status: sum(row.status == status for row in index) for status in dict.fromkeys(r.status for r in index)}
    if int(os.environ.get("RANK", "0")) == 0:
        summary = ", ".join(f"{count} {status}" for status, count in counts.items())
        print(f"{len(index)} scenes ({summary}); index: {os.path.join(args.output, runs.INDEX_NAME)}")
        for row in index:
            if row.status == "failed":
                print(f"failed: {row.input}: {cli_wording(row.error)}", file=sys.stderr)
    code = runs.exit_code(index, args.on_error)
    if code:
        raise SystemExit(code)


def scene_open_options(args: argparse.Namespace) -> dict:
    """`open_scene` options given on the command line (left out when not given, so earlier runs' records match)."""
    options = {}
    if args.file_band_order is not None:
        options["file_band_order"] = file_band_order(args.file_band_order)
    if args.fill_missing:
        options["fill_missing"] = True
    return options


def scene_command_jobs(args: argparse.Namespace):
    from ..inference import runs

    if args.pairs:
        if args.input or getattr(args, "input2", None):
            raise UsageError("Give either --pairs or --input (with --input2), not both.")
        pairs = runs.read_pairs(args.pairs)
        return runs.scene_jobs([first for first, _ in pairs], [second for _, second in pairs])
    if not args.input:
        raise UsageError("Give the scenes with --input (or --pairs for change detection).")
    inputs = runs.expand_inputs(args.input)
    seconds = runs.expand_inputs(args.input2) if getattr(args, "input2", None) else None
    return runs.scene_jobs(inputs, seconds)


def pretrain(args: argparse.Namespace) -> None:
    from ..training.pretraining import PretrainingArguments, run

    options = {field.name: getattr(args, field.name) for field in dataclasses.fields(PretrainingArguments)}
    exit_code = run(PretrainingArguments(**options))
    if exit_code:
        raise SystemExit(exit_code)


def add_pretrain_command(commands, debug: ArgumentParser) -> None:
    from transformers import HfArgumentParser

    from ..training.pretraining import PretrainingArguments

    pretrain_parser = commands.add_parser(
        "pretrain",
        help="Masked-autoencoder pretraining with Accelerate (see spectralgpt_hf.training.pretraining).",
        parents=[debug, HfArgumentParser(PretrainingArguments, add_help=False)],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pretrain_parser.set_defaults(handler=pretrain)


def prepare(args: argparse.Namespace) -> None:
    import time

    from ..data.shards import prepare as prepare_shards
    from ..data.shards import source_records

    records = source_records(args.rasters, args.loader, args.root, args.split, args.file_band_order)
    start = time.perf_counter()
    report = prepare_shards(
        records, args.output_dir, records.band_names, dtype=args.dtype, file_format=args.format,
        samples_per_shard=args.samples_per_shard, num_workers=args.workers,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"Wrote {report.shards_written} shards ({report.samples_written} samples, "
          f"{report.samples_written / seconds:.0f} samples/s) to {report.output_dir}; kept {report.shards_kept} "
          "finished shards of an earlier run.")  # fmt: skip


def add_prepare_command(commands, debug: ArgumentParser) -> None:
    parser = commands.add_parser(
        "prepare", parents=[debug], help="Decode GeoTIFFs (or a dataset loader's files) once into Arrow/Parquet shards that pretrain "
        "--dataset reads; resumable: rerun into the same folder to finish an interrupted run.",
    )  # fmt: skip
    parser.add_argument("output_dir", help="folder for the shards and index.json")
    parser.add_argument("--rasters", nargs="+", default=[], help="stacked GeoTIFFs, band folders, folders or globs")
    parser.add_argument("--file-band-order", help="layer order of stacked files without band descriptions")
    parser.add_argument("--loader", choices=["eurosat", "bigearthnet", "segmunich", "oscd"],
                        help="a dataset loader, with labels (segmunich, oscd: per-pixel, one --split per folder)")
    parser.add_argument("--root", help="the loader's dataset folder")
    parser.add_argument("--split", help="the loader's split (default: every file)")
    parser.add_argument("--dtype", choices=["uint16", "float16"], default="uint16", help="stored pixel type")
    parser.add_argument("--format", choices=["arrow", "parquet"], default="arrow",
                        help="arrow: memory-mapped random access; parquet: compressed, for object stores")  # fmt: skip
    parser.add_argument("--samples-per-shard", type=int, default=256, help="samples per shard file")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="writer processes")
    parser.set_defaults(handler=prepare)


def add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a save_pretrained folder or a Hub model id")
    parser.add_argument(
        "--input", action="extend", nargs="+", default=[], help="scenes: stacked GeoTIFFs, per-band folders, "
        ".SAFE folders or .SAFE.zip, STAC Item JSON, URLs / GDAL paths, glob patterns, .txt files with one scene per "
        "line, STAC ItemCollection .json files (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--output", required=True, help="a folder, one <scene id>.tif (Cloud-Optimized GeoTIFF) per scene plus "
        "index.jsonl; for one scene also a .tif path",
    )  # fmt: skip
    parser.add_argument("--tile", type=int, default=None, help="tile side in pixels (default: the model's size)")
    parser.add_argument("--overlap", type=int, default=None, help="pixels shared by neighbouring tiles (default: a "
                        "quarter of the tile in whole patches, 32 for 128 px)")  # fmt: skip
    parser.add_argument(
        "--file-band-order", help="layer order of stacked GeoTIFFs without band descriptions: a dataset key ("
        "eurosat_ms, ...) or comma-separated band names in file order",
    )  # fmt: skip
    parser.add_argument(
        "--fill-missing", action="store_true", help="read bands the scene lacks as no data (0 after normalisation) "
        "instead of stopping",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8, help="tiles per forward pass")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                        help="precision the model computes in (bfloat16 / float16 for GPUs); the output file's "
                        "type is --output-dtype")  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="compile the model with torch.compile")
    parser.add_argument("--overwrite", action="store_true", help="redo scenes whose output is already complete")
    parser.add_argument(
        "--on-error", choices=["skip", "stop"], default="skip", help="after a failing scene: go on with the others "
        "(exit code 1 at the end) or stop (exit code 3); the index records the error either way",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_product_arguments(parser)


def add_product_arguments(parser: argparse.ArgumentParser) -> None:
    """Real-product input and output options of predict and embed."""
    parser.add_argument("--nodata", type=float, help="stored value of invalid pixels, for files without a nodata tag")
    parser.add_argument(
        "--mask", help="pixels to leave out: 'scl' (SCL classes 0,1,3,8,9,10), 'scl:3,8,9,10', or a cloud-mask "
        "raster (masked where not 0); masked pixels are nodata in the output",
    )  # fmt: skip
    parser.add_argument(
        "--no-radiometric-correction", dest="radiometric_correction", action="store_false",
        help="feed the stored values as they are instead of removing the product's offset (04.00+ baselines)",
    )  # fmt: skip
    parser.add_argument(
        "--normalization", choices=["processor", "fixed"], default="processor",
        help="'fixed': mean/std statistics for every tile instead of the processor's per-tile min-max",
    )  # fmt: skip
    parser.add_argument("--format", dest="output_format", choices=["cog", "gtiff"], default="cog", help="output file")
    parser.add_argument("--output-dtype", choices=["float32", "float16"], help="type embeddings and class scores are "
                        "stored as (default float32; float16 halves the file); not --dtype, which is the model's "
                        "precision")  # fmt: skip


def product_options(args: argparse.Namespace) -> dict:
    names = ("nodata", "mask", "radiometric_correction", "normalization", "output_format", "output_dtype")
    return {name: getattr(args, name) for name in names}


def demo(args: argparse.Namespace) -> None:
    from ..demo import QuickFit, run_demo

    run_demo(
        args.output,
        input=args.input,
        checkpoint=args.checkpoint,
        model=args.model,
        segmentation_model=args.segmentation_model,
        fit=QuickFit() if args.steps is None else QuickFit(steps=args.steps),
        num_clusters=args.clusters,
    )


def build_parser() -> ArgumentParser:
    from .. import __version__

    parser = ArgumentParser(
        prog="spectralgpt-hf", description="SpectralGPT for Hugging Face Transformers. Every flag takes either "
        "spelling, --batch-size or --batch_size.",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help=f"show the traceback of an error (or set {DEBUG_VARIABLE}=1)")
    # also after the command (`spectralgpt-hf predict ... --debug`); SUPPRESS keeps a --debug given before it
    debug = ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)

    convert_parser = add_hub_command(
        commands, debug, "convert", "Convert an original SpectralGPT .pth checkpoint to a save_pretrained folder.",
        convert, {"checkpoint": "original file, e.g. SpectralGPT+.pth",
                  "output_dir": "folder to write (safetensors + config.json)"},
    )  # fmt: skip
    convert_parser.add_argument(
        "--kind",
        choices=["pretrain", "classifier", "segmentation", "change_detection"],
        help="the kind of file, when detection from its tensors is not wanted (a kind that contradicts them fails)",
    )
    convert_parser.add_argument(
        "--push-to-hub", metavar="ORG/NAME", help="also upload the model with its card, image processor and code "
        "files (published files only; log in with `hf auth login` or set HF_TOKEN)",
    )  # fmt: skip

    publish_parser = add_hub_command(
        commands, debug, "publish", "Upload a trained model folder to the Hub with a model card, its image processor "
        "and the code files that let transformers load it with trust_remote_code=True.", publish,
        {"model_dir": "a save_pretrained / Trainer output folder, with the model's preprocessor_config.json",
         "repo_id": "ORG/NAME of the Hub repository (created when missing)"},
    )  # fmt: skip
    publish_parser.add_argument(
        "--image-processor", metavar="FOLDER_OR_HUB_ID", help="where to take the image processor from (a folder or "
        "Hub repository with a preprocessor_config.json) when MODEL_DIR has none",
    )  # fmt: skip

    predict_parser = commands.add_parser(
        "predict", parents=[debug], help="Run a classification, segmentation or change-detection model over a whole scene."
    )
    add_scene_arguments(predict_parser)
    predict_parser.add_argument(
        "--input2", action="extend", nargs="+", help="second dates, aligned with --input, on the same grids "
        "(change detection)",
    )  # fmt: skip
    predict_parser.add_argument("--pairs", help="change detection: a CSV (columns first, second) or JSON of pairs")
    predict_parser.set_defaults(handler=predict)

    embed_parser = commands.add_parser("embed", parents=[debug], help="Write per-patch encoder embeddings of a whole scene.")
    add_scene_arguments(embed_parser)
    embed_parser.add_argument("--geoparquet", help="also write the embeddings as GeoParquet (one row per patch)")
    embed_parser.set_defaults(handler=embed, pairs=None)

    demo_parser = commands.add_parser(
        "demo", parents=[debug], help="An end-to-end run on a real scene: masked reconstruction and whole-scene inference with previews, offline."
    )
    demo_parser.add_argument("--output", default="outputs/demo", help="folder for the GeoTIFFs and PNG previews")
    demo_parser.add_argument("--input", help="a GeoTIFF scene or per-band folder (default: the real SSL4EO-S12 scene embedded in the package)")
    demo_parser.add_argument("--checkpoint", help="an original pretraining .pth file to convert and use")
    demo_parser.add_argument("--model", help="a SpectralGPT pretraining model folder or Hub id to use")
    demo_parser.add_argument("--segmentation-model", help="also write a class map with this segmentation model")
    demo_parser.add_argument(
        "--steps", type=int, help="steps of the quick fit when no model is given (default: the demo's QuickFit)"
    )
    demo_parser.add_argument("--clusters", type=int, default=6, help="clusters of the embedding map")
    demo_parser.set_defaults(handler=demo)

    add_pretrain_command(commands, debug)
    add_prepare_command(commands, debug)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code (argparse exits 2 itself for unknown or malformed flags)."""
    args = build_parser().parse_args(argv)
    keep_freed_memory_for_reuse()
    if debugging(args):
        log_the_library()
    return report_errors(args.command, args, lambda: args.handler(args))

