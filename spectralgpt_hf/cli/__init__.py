"""The `spectralgpt-hf` command line."""

import argparse
import dataclasses
import os
import sys

from ..utils.allocator import keep_freed_memory_for_reuse


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

    commit = push_to_hub(args.model_dir, args.repo_id, base_model=args.base_model, private=args.private)
    print(f"Uploaded {args.model_dir} to {commit.commit_url}")


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--private", action="store_true", default=None, help="create the Hub repository private (default: the Hub's)"
    )
    parser.add_argument(
        "--base-model", help="Hub repository the model was fine-tuned from, for the card (default for the published "
        "downstream files: <namespace>/spectralgpt-plus)",
    )  # fmt: skip


def load_model_on_device(source: str, device: str | None):
    """The saved model (any SpectralGPT class) on `device`, default cuda when available."""
    import torch

    from ..loading import load_model

    return load_model(source).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def predict(args: argparse.Namespace) -> None:
    from ..inference import predict_scene
    from ..loading import load_image_processor

    model = load_model_on_device(args.model, args.device)
    output = predict_scene(
        model, args.input, args.output, input_2=args.input2, processor=load_image_processor(args.model),
        tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, progress=not args.quiet,
    )  # fmt: skip
    print(f"Wrote {output}")


def embed(args: argparse.Namespace) -> None:
    from ..inference import embed_scene
    from ..loading import load_image_processor

    model = load_model_on_device(args.model, args.device)  # embed_scene uses its encoder
    output = embed_scene(
        model, args.input, args.output, processor=load_image_processor(args.model),
        tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, progress=not args.quiet,
    )  # fmt: skip
    print(f"Wrote {output}")


def pretrain(args: argparse.Namespace) -> None:
    from ..training.pretraining import PretrainingArguments, run

    options = {field.name: getattr(args, field.name) for field in dataclasses.fields(PretrainingArguments)}
    exit_code = run(PretrainingArguments(**options))
    if exit_code:
        raise SystemExit(exit_code)


def add_pretrain_command(commands) -> None:
    from transformers import HfArgumentParser

    from ..training.pretraining import PretrainingArguments

    pretrain_parser = commands.add_parser(
        "pretrain",
        help="Masked-autoencoder pretraining with Accelerate (see spectralgpt_hf.training.pretraining).",
        parents=[HfArgumentParser(PretrainingArguments, add_help=False)],
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


def add_prepare_command(commands) -> None:
    parser = commands.add_parser(
        "prepare", help="Decode GeoTIFFs (or a dataset loader's files) once into Arrow/Parquet shards that pretrain "
        "--dataset reads; resumable: rerun into the same folder to finish an interrupted run.",
    )  # fmt: skip
    parser.add_argument("output_dir", help="folder for the shards and index.json")
    parser.add_argument("--rasters", nargs="+", default=[], help="stacked GeoTIFFs, band folders, folders or globs")
    parser.add_argument("--file-band-order", help="layer order of stacked files without band descriptions")
    parser.add_argument("--loader", choices=["eurosat", "bigearthnet"], help="a dataset loader, with labels")
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
    parser.add_argument("--input", required=True, help="a stacked GeoTIFF or a folder of per-band GeoTIFFs")
    parser.add_argument("--output", required=True, help="GeoTIFF to write (atomically)")
    parser.add_argument("--tile", type=int, default=None, help="tile side in pixels (default: the model's size)")
    parser.add_argument("--overlap", type=int, default=32, help="pixels shared by neighbouring tiles")
    parser.add_argument("--batch-size", type=int, default=8, help="tiles per forward pass")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def demo(args: argparse.Namespace) -> None:
    from ..demo import run_demo

    run_demo(
        args.output,
        input=args.input,
        checkpoint=args.checkpoint,
        model=args.model,
        segmentation_model=args.segmentation_model,
        steps=args.steps,
        num_clusters=args.clusters,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectralgpt-hf", description="SpectralGPT for Hugging Face Transformers.")
    commands = parser.add_subparsers(dest="command", required=True)

    convert_parser = commands.add_parser(
        "convert", help="Convert an original SpectralGPT .pth checkpoint to a save_pretrained folder."
    )
    convert_parser.add_argument("checkpoint", help="original file, e.g. SpectralGPT+.pth")
    convert_parser.add_argument("output_dir", help="folder to write (safetensors + config.json)")
    convert_parser.add_argument(
        "--kind",
        choices=["pretrain", "classifier", "segmentation", "change_detection"],
        help="the kind of file, when detection from its tensors is not wanted (a kind that contradicts them fails)",
    )
    convert_parser.add_argument(
        "--push-to-hub", metavar="ORG/NAME", help="also upload the model with its card, image processor and code "
        "files (published files only; log in with `hf auth login` or set HF_TOKEN)",
    )  # fmt: skip
    add_hub_arguments(convert_parser)
    convert_parser.set_defaults(handler=convert)

    publish_parser = commands.add_parser(
        "publish", help="Upload a trained model folder to the Hub with a model card, its image processor and the "
        "code files that let transformers load it with trust_remote_code=True.",
    )  # fmt: skip
    publish_parser.add_argument(
        "model_dir", help="a save_pretrained / Trainer output folder, with the model's preprocessor_config.json"
    )
    publish_parser.add_argument("repo_id", help="ORG/NAME of the Hub repository (created when missing)")
    add_hub_arguments(publish_parser)
    publish_parser.set_defaults(handler=publish)

    predict_parser = commands.add_parser(
        "predict", help="Run a classification, segmentation or change-detection model over a whole scene."
    )
    add_scene_arguments(predict_parser)
    predict_parser.add_argument("--input2", help="second date, on the same grid (change detection)")
    predict_parser.set_defaults(handler=predict)

    embed_parser = commands.add_parser("embed", help="Write per-patch encoder embeddings of a whole scene.")
    add_scene_arguments(embed_parser)
    embed_parser.set_defaults(handler=embed)

    demo_parser = commands.add_parser(
        "demo", help="An end-to-end run on a real scene: masked reconstruction and whole-scene inference with previews, offline."
    )
    demo_parser.add_argument("--output", default="outputs/demo", help="folder for the GeoTIFFs and PNG previews")
    demo_parser.add_argument("--input", help="a GeoTIFF scene or per-band folder (default: the shared sample scene)")
    demo_parser.add_argument("--checkpoint", help="an original pretraining .pth file to convert and use")
    demo_parser.add_argument("--model", help="a SpectralGPT pretraining model folder or Hub id to use")
    demo_parser.add_argument("--segmentation-model", help="also write a class map with this segmentation model")
    demo_parser.add_argument("--steps", type=int, default=150, help="steps of the quick fit when no model is given")
    demo_parser.add_argument("--clusters", type=int, default=6, help="clusters of the embedding map")
    demo_parser.set_defaults(handler=demo)

    add_pretrain_command(commands)
    add_prepare_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory_for_reuse()
    try:
        args.handler(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"spectralgpt-hf {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
