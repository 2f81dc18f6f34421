"""The converter on small files in the original layouts: strictness, safety, the command line."""

import argparse
import re

import pytest
import torch

from spectralgpt_hf import (
    CheckpointConversionError,
    SpectralGPTForImageClassification,
    SpectralGPTForPreTraining,
    convert_original_checkpoint,
)
from spectralgpt_hf.cli import main as cli_main
from spectralgpt_hf.convert_original_checkpoint import detect_kind

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


# --- Inputs the tensors alone decide ------------------------------------------------------------------------------


def without_qkv_biases(state_dict):
    return {key: value for key, value in state_dict.items() if not re.search(r"\.attn\.(q|k|v)\.bias$", key)}


def test_attention_without_query_key_value_biases(tiny_original):
    state_dict, write = tiny_original
    model = convert_original_checkpoint(write(without_qkv_biases(state_dict)))
    assert model.config.qkv_bias is False
    attention = model.spectralgpt.layers[0].attention
    assert (attention.q_proj.bias, attention.k_proj.bias, attention.v_proj.bias) == (None, None, None)
    torch.testing.assert_close(attention.o_proj.bias, state_dict["blocks.0.attn.proj.bias"])  # proj keeps its bias
    # The decoder's blocks follow the encoder's setting.
    assert model.decoder.layers[0].attention.q_proj.bias is None
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(1, 12, 32, 32)).loss)


@pytest.mark.parametrize("width, heads", [(1024, 16), (1280, 16)], ids=["large", "huge"])
def test_head_count_of_the_wider_models(make_weights, tmp_path, width, heads):
    state_dict = make_weights.make_state_dict(tiny_pretrain_manifest(dim=width), seed=0)
    path = tmp_path / "wide.pth"
    make_weights.write_original_checkpoint("pretrain", state_dict, path)
    model = convert_original_checkpoint(path)
    assert (model.config.hidden_size, model.config.num_attention_heads) == (width, heads)
    assert model.spectralgpt.layers[0].attention.head_dim == width // heads
    value = model.spectralgpt.layers[1].attention.v_proj.weight
    torch.testing.assert_close(value, state_dict["blocks.1.attn.v.weight"])


def test_unknown_width_needs_the_head_count(make_weights, tmp_path):
    path = tmp_path / "narrow.pth"
    make_weights.write_original_checkpoint(
        "pretrain", make_weights.make_state_dict(tiny_pretrain_manifest(dim=96), seed=0), path
    )
    with pytest.raises(CheckpointConversionError, match=r"Hidden size 96 is none of .*num_attention_heads"):
        convert_original_checkpoint(path)
    model = convert_original_checkpoint(path, config_overrides={"num_attention_heads": 4})
    assert (model.config.hidden_size, model.spectralgpt.layers[0].attention.head_dim) == (96, 24)


def tiny_classifier_manifest(dim=768, tokens=16 * 4, num_labels=10):
    """The layout of the original classification fine-tuning: one joint position table, a head."""
    pretrain = tiny_pretrain_manifest(dim=dim)
    encoder = [(key, shape) for key, shape in pretrain if key.startswith(("patch_embed", "blocks"))]
    return [("pos_embed", (1, tokens, dim)), *encoder, ("norm.weight", (dim,)), ("norm.bias", (dim,)),
            ("head.weight", (num_labels, dim)), ("head.bias", (num_labels,))]  # fmt: skip


@pytest.mark.parametrize("args, drop_path_rate", [({"drop_path": 0.1}, 0.1), ({}, 0.2)], ids=["from-args", "default"])
def test_classifier_takes_its_drop_path_from_the_file(make_weights, tmp_path, args, drop_path_rate):
    state_dict = make_weights.make_state_dict(tiny_classifier_manifest(), seed=0)
    path = tmp_path / "classifier.pth"
    make_weights.write_original_checkpoint("classifier", state_dict, path, args=args)
    model = convert_original_checkpoint(path)
    assert type(model) is SpectralGPTForImageClassification
    assert (model.config.num_labels, model.config.image_size, model.config.position_embedding_type) == (10, 32, "joint")
    assert model.config.drop_path_rate == drop_path_rate
    # The blocks' stochastic depth grows linearly to the rate: the last block of two has all of it.
    assert model.spectralgpt.layers[-1].drop_path.drop_prob == pytest.approx(drop_path_rate)
    torch.testing.assert_close(model.classifier.weight, state_dict["head.weight"])


def test_mask_ratio_comes_from_the_file(tiny_original):
    _, write = tiny_original
    assert convert_original_checkpoint(write(args={"mask_ratio": 0.75})).config.mask_ratio == 0.75


def test_patch_sizes_and_band_count_come_from_the_tensors(make_weights, tmp_path):
    """4 x 4 px patches of 3 bands in 2 spectral groups: 6 bands, 16 px images (a 4 x 4 grid)."""
    resized = {"patch_embed.proj.weight": (768, 1, 3, 4, 4), "decoder_pred.weight": (48, 64), "decoder_pred.bias": (48,)}
    manifest = [(key, resized.get(key, shape)) for key, shape in tiny_pretrain_manifest(groups=2)]
    path = tmp_path / "small-patches.pth"
    make_weights.write_original_checkpoint("pretrain", make_weights.make_state_dict(manifest, seed=0), path)
    config = convert_original_checkpoint(path).config
    assert (config.patch_size, config.spectral_patch_size, config.num_bands, config.image_size) == (4, 3, 6, 16)


def test_a_key_the_model_lacks_is_listed_with_its_new_name(tiny_original):
    """Query/key/value biases in the second block only: the first block says there are none, so the second
    block's (and the decoder's, which follows the encoder) have nowhere to go."""
    state_dict, write = tiny_original
    broken = {key: value for key, value in state_dict.items() if not re.match(r"blocks\.0\.attn\.[qkv]\.bias", key)}
    with pytest.raises(CheckpointConversionError) as error:
        convert_original_checkpoint(write(broken))
    assert (
        "mapped keys the model does not have (6): blocks.1.attn.k.bias (as spectralgpt.layers.1.attention.k_proj.bias)"
        in str(error.value)
    )


@pytest.mark.parametrize("kind", ["segmentation", "change_detection"])
def test_dense_heads_leave_out_the_unused_encoder_norm(make_weights, reference_dir, tmp_path, kind):
    """The published segmentation and change-detection files keep the pretrained encoder's final norm, which
    their models never use: it is left out, and everything else arrives (here with the encoder cut to 2 blocks)."""
    name = "segmentation_base_128_nc13" if kind == "segmentation" else "change_detection_base_128"
    manifest = make_weights.load_manifest(reference_dir / "manifests" / f"{name}.json")
    manifest = [(key, shape) for key, shape in manifest if not re.match(r"blocks\.([2-9]|1\d)\.", key)]
    state_dict = make_weights.make_state_dict(manifest, seed=0)
    assert "norm.weight" in state_dict
    path = tmp_path / f"{kind}.pth"
    make_weights.write_original_checkpoint(kind, state_dict, path)
    # Told apart by the class count (OSCD's model always has 2) when the file is a bare state_dict
    assert detect_kind(state_dict) == kind
    model = convert_original_checkpoint(path)
    assert model.config.num_hidden_layers == 2
    if kind == "change_detection":  # the OSCD model has no dropout in its neck and pyramid pooling
        assert (model.config.neck_dropout_prob, model.config.pyramid_pooling_dropout_prob) == (0.0, 0.0)
        assert model.config.id2label == {0: "no change", 1: "change"}
    else:
        assert (model.config.neck_dropout_prob, model.config.pyramid_pooling_dropout_prob) == (0.5, 0.5)
    assert not any(key.endswith(("layernorm.weight", "layernorm.bias")) for key in model.state_dict())
    torch.testing.assert_close(model.spectralgpt.layers[1].attention.o_proj.weight, state_dict["blocks.1.attn.proj.weight"])


def test_a_file_saved_from_a_gpu_loads_on_the_cpu(tiny_original, tmp_path):
    """The published files hold CUDA tensors; they load on machines without one. Saved here with every storage
    tagged cuda:0, as a GPU run writes it."""
    state_dict, _ = tiny_original
    path = tmp_path / "from-gpu.pth"
    registry = torch.serialization._package_registry
    registry.insert(0, (-1, lambda storage: "cuda:0", lambda storage, location: None))
    try:
        torch.save({"model": state_dict}, path)
    finally:
        registry.pop(0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):  # what loading without a map location does here
            torch.load(path, weights_only=True)
    model = convert_original_checkpoint(path)
    torch.testing.assert_close(model.spectralgpt.layers[0].attention.q_proj.weight, state_dict["blocks.0.attn.q.weight"])
