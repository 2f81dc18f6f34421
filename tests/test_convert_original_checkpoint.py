"""The converter on small files in the original layouts: strictness, safety, the command line."""

import argparse

import pytest
import torch

from spectralgpt_hf import CheckpointConversionError, SpectralGPTForPreTraining, convert_original_checkpoint
from spectralgpt_hf.cli import main as cli_main

from layouts import tiny_pretrain_manifest


@pytest.fixture
def tiny_original(make_weights, tmp_path):
    state_dict = make_weights.make_state_dict(tiny_pretrain_manifest(), seed=0)

    def write(state=state_dict, kind="pretrain", args=None):
        path = tmp_path / "original.pth"
        make_weights.write_original_checkpoint(kind, state, path, args=args or {"mask_ratio": 0.9})
        return path

    return state_dict, write


def test_config_is_inferred_from_the_tensors(tiny_original, tmp_path):
    state_dict, write = tiny_original
    model = convert_original_checkpoint(write(), tmp_path / "out")
    config = model.config
    assert type(model) is SpectralGPTForPreTraining
    assert (config.image_size, config.num_bands, config.patch_size, config.spectral_patch_size) == (32, 12, 8, 3)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size) == (
        768, 2, 12, 64,
    )
    assert (config.decoder_hidden_size, config.decoder_num_hidden_layers, config.decoder_intermediate_size) == (
        64, 1, 128,
    )
    # every tensor arrives, under its new name
    torch.testing.assert_close(model.spectralgpt.layers[1].attention.o_proj.weight, state_dict["blocks.1.attn.proj.weight"])
    torch.testing.assert_close(model.decoder.position_embeddings.spectral, state_dict["decoder_pos_embed_temporal"])
    reloaded = SpectralGPTForPreTraining.from_pretrained(tmp_path / "out")
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], tensor, msg=name)


def test_unmapped_missing_and_mis_shaped_keys_are_listed(tiny_original):
    state_dict, write = tiny_original
    broken = dict(state_dict)
    broken["blocks.0.attn.extra.weight"] = torch.zeros(3)
    del broken["blocks.1.mlp.fc2.bias"]
    broken["decoder_norm.weight"] = torch.ones(65)
    with pytest.raises(CheckpointConversionError) as error:
        convert_original_checkpoint(write(broken))
    message = str(error.value)
    assert "blocks.0.attn.extra.weight" in message
    assert "spectralgpt.layers.1.mlp.fc2.bias" in message
    assert "decoder.layernorm.weight: checkpoint (65,) vs model (64,)" in message


def test_files_that_are_not_spectralgpt_checkpoints(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"model": {"conv1.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(CheckpointConversionError, match="Not a SpectralGPT checkpoint"):
        convert_original_checkpoint(other)
    torch.save([1, 2, 3], other)
    with pytest.raises(CheckpointConversionError, match="expected a state_dict of tensors"):
        convert_original_checkpoint(other)
    other.write_text("not a checkpoint")
    with pytest.raises(CheckpointConversionError, match="not a readable PyTorch checkpoint|other than tensors"):
        convert_original_checkpoint(other)
    with pytest.raises(FileNotFoundError):
        convert_original_checkpoint(tmp_path / "missing.pth")


class Payload:
    """Unpickling this would run a shell command."""

    def __reduce__(self):
        import os

        return os.system, ("touch PWNED",)


def test_pickled_code_is_never_executed(tmp_path, monkeypatch, tiny_original):
    state_dict, _ = tiny_original
    monkeypatch.chdir(tmp_path)
    malicious = tmp_path / "malicious.pth"
    torch.save({"model": state_dict, "args": argparse.Namespace(), "payload": Payload()}, malicious)
    with pytest.raises(CheckpointConversionError, match="other than tensors"):
        convert_original_checkpoint(malicious)
    assert not (tmp_path / "PWNED").exists()


def test_output_written_atomically_and_replaced(tiny_original, tmp_path, monkeypatch):
    _, write = tiny_original
    path = write()
    output = tmp_path / "out"
    convert_original_checkpoint(path, output)
    before = (output / "model.safetensors").read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(SpectralGPTForPreTraining, "save_pretrained", fail)
    with pytest.raises(OSError, match="disk full"):
        convert_original_checkpoint(path, output)
    # the previous good folder is intact and no staging folder is left behind
    assert (output / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["original.pth", "out"]


def test_command_line_convert(tiny_original, tmp_path, capsys):
    _, write = tiny_original
    assert cli_main(["convert", str(write()), str(tmp_path / "cli_out")]) == 0
    assert "SpectralGPTForPreTraining" in capsys.readouterr().out
    assert (tmp_path / "cli_out" / "config.json").is_file()
    assert cli_main(["convert", str(tmp_path / "nope.pth"), str(tmp_path / "x")]) == 1
    assert "No checkpoint file" in capsys.readouterr().err
