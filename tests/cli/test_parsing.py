"""Every command takes each long flag in both spellings, `--batch-size` and `--batch_size` (the real command line,
in a subprocess), and `spectralgpt-hf --version` prints the package's version."""

import pytest
from command_line import EUROSAT_TILE, check, run_cli, save_tiny_models

import spectralgpt_hf
from spectralgpt_hf.cli.parsing import ArgumentParser, other_spelling


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("models"))


def test_other_spelling():
    assert other_spelling("--batch-size") == "--batch_size"
    assert other_spelling("--file_band_order") == "--file-band-order"
    assert other_spelling("--quiet") == "--quiet"


def test_both_spellings_parse_to_one_flag_and_values_stay():
    parser = ArgumentParser(prog="x")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--output_dir")
    parser.add_argument("rest", nargs="*")
    assert vars(parser.parse_args(["--batch_size", "3", "--output-dir=a_b"])) == {
        "batch_size": 3, "output_dir": "a_b", "rest": []
    }  # fmt: skip
    # after a bare --, a value that looks like a flag is left as it is
    assert parser.parse_args(["--", "--batch_size"]).rest == ["--batch_size"]


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"spectralgpt-hf {spectralgpt_hf.__version__}"


@pytest.mark.parametrize("command, model", [("predict", "segmenter"), ("embed", "pretraining")])
def test_scene_commands_take_both_spellings(models, tmp_path, command, model):
    outputs = {}
    for style, flags in {
        "kebab": ["--file-band-order", "eurosat_ms", "--batch-size", "2", "--output-dtype", "float32"],
        "snake": ["--file_band_order", "eurosat_ms", "--batch_size", "2", "--output_dtype", "float32"],
    }.items():
        output = tmp_path / f"{style}.tif"
        result = run_cli(command, "--model", models[model], "--input", EUROSAT_TILE, "--output", str(output),
                         "--quiet", *flags)  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs[style] = output.read_bytes()
    assert outputs["kebab"] == outputs["snake"]


@pytest.mark.parametrize("spelling", ["--base-model", "--base_model"])
def test_convert_takes_both_spellings(tmp_path, spelling):
    """The flag is accepted (not argparse's "unrecognized arguments"): the run gets as far as the missing file."""
    result = run_cli("convert", str(tmp_path / "absent.pth"), str(tmp_path / "out"), spelling, "org/base")
    check(result, "convert", 1, "No checkpoint file")


@pytest.mark.parametrize("flags", [["--output_dir", "o", "--max_steps", "1"], ["--output-dir", "o", "--max-steps", "1"]])
def test_pretrain_takes_both_spellings(tmp_path, flags):
    result = run_cli("pretrain", *flags, "--rasters", str(tmp_path / "absent"), cwd=tmp_path)
    check(result, "pretrain", 1, "absent")
