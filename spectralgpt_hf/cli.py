"""The `spectralgpt-hf` command line."""

import argparse
import sys


def convert(args: argparse.Namespace) -> None:
    from .convert_original_checkpoint import convert_original_checkpoint

    model = convert_original_checkpoint(args.checkpoint, args.output_dir)
    print(f"Wrote {type(model).__name__} ({model.num_parameters():,} parameters) to {args.output_dir}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectralgpt-hf", description="SpectralGPT for Hugging Face Transformers.")
    commands = parser.add_subparsers(dest="command", required=True)

    convert_parser = commands.add_parser(
        "convert", help="Convert an original SpectralGPT .pth checkpoint to a save_pretrained folder."
    )
    convert_parser.add_argument("checkpoint", help="original file, e.g. SpectralGPT+.pth")
    convert_parser.add_argument("output_dir", help="folder to write (safetensors + config.json)")
    convert_parser.set_defaults(handler=convert)
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
