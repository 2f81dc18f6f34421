"""The command line's argument parser: every long flag in both spellings, `--batch-size` and `--batch_size`."""

import argparse
import sys


def other_spelling(flag: str) -> str:
    """`--batch-size` for `--batch_size` and the reverse (the leading dashes stay)."""
    name = flag[2:]
    return "--" + (name.replace("_", "-") if "_" in name else name.replace("-", "_"))


class ArgumentParser(argparse.ArgumentParser):
    """
    An `argparse.ArgumentParser` that takes each long flag in kebab case or snake case, whichever way it was
    declared (`--file-band-order` and `--file_band_order` are one flag). `--help` shows the declared spelling.

    The spelling is settled while parsing, so it holds for flags added by any means: `add_argument`, argument
    groups, parent parsers (the `HfArgumentParser` of `pretrain`) and subcommands (which get this class too).
    """

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)  # after a bare --, everything is a value
        spelled = [self.declared_spelling(arg) for arg in args[:end]] + args[end:]
        return super().parse_known_args(spelled, namespace)

    def declared_spelling(self, arg: str) -> str:
        if not arg.startswith("--") or len(arg) < 3:
            return arg
        flag, equals, value = arg.partition("=")
        if flag in self._option_string_actions:
            return arg
        other = other_spelling(flag)
        return other + equals + value if other in self._option_string_actions else arg

