"""The `spectralgpt-hf` command line."""

import argparse
import sys


def convert(args: argparse.Namespace) -> None:
    from .convert_original_checkpoint import convert_original_checkpoint

    model = convert_original_checkpoint(args.checkpoint, args.output_dir, kind=args.kind)
    print(f"Wrote {type(model).__name__} ({model.num_parameters():,} parameters) to {args.output_dir}")


def load_model(name_or_path: str, device: str | None):
    """The class a saved model was trained as (from config.json's `architectures`)."""
    import torch
    from transformers import AutoConfig

    import spectralgpt_hf

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    architectures = AutoConfig.from_pretrained(name_or_path).architectures or ["SpectralGPTModel"]
    model_class = getattr(spectralgpt_hf, architectures[0], None)
    if model_class is None:
        raise ValueError(f"{name_or_path} holds a {architectures[0]}, which is not a SpectralGPT model class.")
    return model_class.from_pretrained(name_or_path).to(device)


def predict(args: argparse.Namespace) -> None:
    from .inference import load_processor, predict_scene

    model = load_model(args.model, args.device)
    output = predict_scene(
        model, args.input, args.output, input_2=args.input2, processor=load_processor(args.model),
        tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, progress=not args.quiet,
    )  # fmt: skip
    print(f"Wrote {output}")


def embed(args: argparse.Namespace) -> None:
    from .inference import embed_scene, load_processor

    model = load_model(args.model, args.device)  # embed_scene uses its encoder
    output = embed_scene(
        model, args.input, args.output, processor=load_processor(args.model),
        tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, progress=not args.quiet,
    )  # fmt: skip
    print(f"Wrote {output}")


def add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a save_pretrained folder or a Hub model id")
    parser.add_argument("--input", required=True, help="a stacked GeoTIFF or a folder of per-band GeoTIFFs")
    parser.add_argument("--output", required=True, help="GeoTIFF to write (atomically)")
    parser.add_argument("--tile", type=int, default=None, help="tile side in pixels (default: the model's size)")
    parser.add_argument("--overlap", type=int, default=32, help="pixels shared by neighbouring tiles")
    parser.add_argument("--batch-size", type=int, default=8, help="tiles per forward pass")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


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
    convert_parser.set_defaults(handler=convert)

    predict_parser = commands.add_parser(
        "predict", help="Run a classification, segmentation or change-detection model over a whole scene."
    )
    add_scene_arguments(predict_parser)
    predict_parser.add_argument("--input2", help="second date, on the same grid (change detection)")
    predict_parser.set_defaults(handler=predict)

    embed_parser = commands.add_parser("embed", help="Write per-patch encoder embeddings of a whole scene.")
    add_scene_arguments(embed_parser)
    embed_parser.set_defaults(handler=embed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"spectralgpt-hf {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
