"""The command line's one error boundary: a mistake ends in `spectralgpt-hf CMD: error: ...` and what to do, not a
traceback. Exit code 2 for usage errors (flags that cannot work together or with the model, found before any
work), 1 for runs that failed. `--debug` or `SPECTRALGPT_DEBUG=1` shows the traceback as well."""

import logging
import os
import re
import sys
import traceback

EXIT_FAILED, EXIT_USAGE = 1, 2
DEBUG_VARIABLE = "SPECTRALGPT_DEBUG"

# The library's messages name Python arguments; on the command line they are flags.
CLI_WORDING = [
    (re.compile(r"\bfile_band_order\b"), "--file-band-order"),
    (re.compile(r"\bfill_missing=True\b"), "--fill-missing"),
    (re.compile(r"\bpass image_processor\b"), "pass --image-processor FOLDER_OR_HUB_ID"),
]


class UsageError(Exception):
    """Flags that cannot work (together, or with the model); raised before anything is read or written."""


# Errors of the user's inputs (missing files, unreadable rasters and checkpoints, wrong values): their message is
# the report. Anything else is reported with its type.
EXPECTED = (UsageError, OSError, ValueError)


def debugging(args) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def log_the_library() -> None:
    """The package's own log on stderr, DEBUG included: with --debug, the tracebacks of the scenes a many-scene run
    recorded as failed and went past."""
    logger = logging.getLogger("spectralgpt_hf")
    logger.setLevel(logging.DEBUG)
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())
        logger.propagate = False  # printed once, by this handler


def cli_wording(message: str) -> str:
    for pattern, flag in CLI_WORDING:
        message = pattern.sub(flag, message)
    return message


def describe(error: BaseException) -> str:
    """What went wrong, in command-line terms."""
    if type(error).__name__ == "RasterioIOError":
        message = f"could not read a raster: {error}. Is it a complete GeoTIFF (or a folder of per-band GeoTIFFs)?"
    elif isinstance(error, EXPECTED):
        message = str(error)
    else:
        message = f"{type(error).__name__}: {error}"
    return cli_wording(message.strip() or type(error).__name__)


def report_errors(command: str, args, run) -> int:
    """Runs `run()`; returns the exit code, an error reported as one `spectralgpt-hf CMD: error: ...` message."""
    try:
        run()
    except KeyboardInterrupt:
        print(f"spectralgpt-hf {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debugging(args):
            traceback.print_exc()
        # an error no check foresaw may be a bug: say how to see where it came from
        hint = "" if debugging(args) or isinstance(error, EXPECTED) else " (--debug shows the traceback)"
        print(f"spectralgpt-hf {command}: error: {describe(error)}{hint}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, UsageError) else EXIT_FAILED
    return 0
