"""Unit tests of the encoder and the masked-autoencoder pretraining model, on tiny configurations."""

import math
import subprocess
import sys

import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining

from testing_utils import tiny_config as shared_tiny_config
from spectralgpt_hf import SpectralGPTConfig, SpectralGPTForPreTraining, SpectralGPTModel


# The shared tiny model on 16 px of 4: the same 2 x 4 x 4 token grid, a quarter of the tokens kept.
ENCODER_TEST_SIZES = dict(image_size=16, patch_size=4, mask_ratio=0.75)


def tiny_config(**kwargs) -> SpectralGPTConfig:
    return shared_tiny_config(**{**ENCODER_TEST_SIZES, **kwargs})


def pixels(batch=2, bands=6, size=16, seed=0):
    return torch.rand(batch, bands, size, size, generator=torch.Generator().manual_seed(seed))


def build(model_class, config=None, seed=0):
    torch.manual_seed(seed)
    return model_class(config or tiny_config()).eval()


def test_encoder_output_shapes_and_token_count():
    model = build(SpectralGPTModel)
    outputs = model(pixels())
    assert outputs.last_hidden_state.shape == (2, 2 * 4 * 4, 32)
    assert outputs.pooler_output.shape == (2, 32)


def test_token_order_is_group_major_then_row_major():
    """Token t*rows*cols + r*cols + c holds bands [3t, 3t+3) of patch (r, c): the Conv3d equals a linear map of
    the patchified cubes in that order."""
    model = build(SpectralGPTForPreTraining)
    embeddings = model.spectralgpt.embeddings
    values = pixels()
    tokens = embeddings.patch_embeddings(values)
    projection = embeddings.patch_embeddings.projection
    expected = model.patchify(values) @ projection.weight.flatten(1).T + projection.bias
    torch.testing.assert_close(tokens, expected, atol=1e-5, rtol=1e-5)
    # patch (row 1, col 2) of spectral group 1 is token 1 * 16 + 1 * 4 + 2
    cube = values[:, 3:6, 4:8, 8:12].flatten(1)
    torch.testing.assert_close(model.patchify(values)[:, 16 + 4 + 2], cube)


def test_patchify_unpatchify_round_trip_at_other_sizes():
    model = build(SpectralGPTForPreTraining)
    values = pixels(bands=9, size=24)
    patches = model.patchify(values)
    assert patches.shape == (2, 3 * 6 * 6, 3 * 4 * 4)
    torch.testing.assert_close(model.unpatchify(patches, image_size=(24, 24), num_bands=9), values)
    with pytest.raises(ValueError, match="Expected patches of shape"):
        model.unpatchify(patches)


def test_pooler_is_final_norm_of_mean_of_last_block():
    model = build(SpectralGPTModel)
    outputs = model(pixels(), output_hidden_states=True)
    assert len(outputs.hidden_states) == 3
    last_block = outputs.hidden_states[-1]
    torch.testing.assert_close(outputs.last_hidden_state, model.layernorm(last_block))
    torch.testing.assert_close(outputs.pooler_output, model.layernorm(last_block.mean(dim=1)))


def test_attentions_with_eager_and_return_dict_false():
    model = build(SpectralGPTModel, tiny_config(attn_implementation="eager"))
    outputs = model(pixels(), output_attentions=True)
    assert len(outputs.attentions) == 2
    assert outputs.attentions[0].shape == (2, 4, 32, 32)
    torch.testing.assert_close(outputs.attentions[0].sum(-1), torch.ones(2, 4, 32))
    as_tuple = model(pixels(), return_dict=False)
    torch.testing.assert_close(as_tuple[0], outputs.last_hidden_state)


def test_eager_and_sdpa_agree():
    eager = build(SpectralGPTForPreTraining, tiny_config(attn_implementation="eager"))
    sdpa = build(SpectralGPTForPreTraining, tiny_config(attn_implementation="sdpa"))
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    noise = torch.rand(2, 32)
    a, b = eager(pixels(), noise=noise), sdpa(pixels(), noise=noise)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=1e-5)
    sdpa.set_attn_implementation("eager")
    assert sdpa.config._attn_implementation == "eager"


def test_gradient_checkpointing_gives_same_gradients():
    def gradients(checkpointing):
        model = build(SpectralGPTForPreTraining).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        assert model.spectralgpt.layers[0].gradient_checkpointing is checkpointing
        model(pixels(), noise=torch.rand(2, 32, generator=torch.Generator().manual_seed(1))).loss.backward()
        return {name: p.grad for name, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], msg=name)


def test_masking_follows_noise():
    model = build(SpectralGPTForPreTraining)
    noise = torch.rand(2, 32, generator=torch.Generator().manual_seed(3))
    outputs = model(pixels(), noise=noise)
    num_visible = int(32 * (1 - 0.75))
    expected_mask = torch.ones(2, 32)
    expected_mask.scatter_(1, noise.argsort(dim=1)[:, :num_visible], 0.0)
    torch.testing.assert_close(outputs.mask, expected_mask)
    assert outputs.logits.shape == (2, 32, 3 * 4 * 4)
    torch.testing.assert_close(outputs.ids_restore, noise.argsort(1).argsort(1))
    # same noise, same result; other noise, other mask
    torch.testing.assert_close(model(pixels(), noise=noise).logits, outputs.logits)
    assert not torch.equal(model(pixels()).mask, outputs.mask)


def test_visible_tokens_match_unmasked_encoder():
    """With mask_ratio 0 the encoder sees every token, shuffled; attention is order-free, so the tokens equal
    the plain forward's, gathered by the shuffle."""
    model = build(SpectralGPTForPreTraining)
    noise = torch.rand(2, 32)
    plain = model.spectralgpt(pixels()).last_hidden_state
    shuffled = model.spectralgpt(pixels(), visible_token_indices=noise.argsort(1)).last_hidden_state
    torch.testing.assert_close(shuffled, torch.gather(plain, 1, noise.argsort(1)[..., None].expand(-1, -1, 32)))


def test_loss_matches_image_space_formulation():
    """loss1: MSE over removed tokens; loss3: MSE of the sum of the spectral groups' cubes, everywhere."""
    model = build(SpectralGPTForPreTraining)
    values = pixels()
    outputs = model(values, noise=torch.rand(2, 32))
    predicted = model.unpatchify(outputs.logits, image_size=(16, 16), num_bands=6)
    token_mask = outputs.mask.reshape(2, 2, 1, 4, 1, 4, 1).expand(2, 2, 3, 4, 4, 4, 4).reshape(2, 6, 16, 16)
    masked = ((predicted - values) ** 2 * token_mask).sum() / token_mask.sum()
    group_sum = lambda image: image.reshape(2, 2, 3, 16, 16).sum(dim=1)
    spectral = ((group_sum(predicted) - group_sum(values)) ** 2).mean()
    torch.testing.assert_close(outputs.loss, masked + spectral)


def test_norm_pix_loss_changes_only_the_masked_term():
    noise = torch.rand(2, 32)
    plain = build(SpectralGPTForPreTraining)(pixels(), noise=noise)
    normed = build(SpectralGPTForPreTraining, tiny_config(norm_pix_loss=True))(pixels(), noise=noise)
    torch.testing.assert_close(plain.logits, normed.logits)
    assert not torch.allclose(plain.loss, normed.loss)


def test_return_loss_false_and_mask_ratio_override():
    model = build(SpectralGPTForPreTraining)
    outputs = model(pixels(), mask_ratio=0.5, return_loss=False)
    assert outputs.loss is None
    assert int(outputs.mask.sum(1)[0]) == 32 - int(32 * 0.5)


def test_size_mismatch_names_the_flag_and_interpolation_resizes():
    model = build(SpectralGPTModel)
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        model(pixels(size=24))
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        model(pixels(bands=9))
    assert model(pixels(size=24), interpolate_pos_encoding=True).last_hidden_state.shape == (2, 2 * 36, 32)
    assert model(pixels(size=8, bands=12), interpolate_pos_encoding=True).last_hidden_state.shape == (2, 4 * 4, 32)
    # at the trained size the flag changes nothing
    torch.testing.assert_close(model(pixels(), interpolate_pos_encoding=True).last_hidden_state,
                               model(pixels()).last_hidden_state)


def test_interpolated_tables_are_smooth_resizes():
    model = build(SpectralGPTModel)
    table = model.embeddings.position_embeddings
    # upsampling a constant spatial table keeps it constant
    with torch.no_grad():
        table.spatial.fill_(0.5)
        table.spectral.copy_(torch.tensor([[0.0], [1.0]]).expand(1, 2, 32))
    resized = table(num_groups=4, rows=8, cols=8, interpolate=True)
    assert resized.shape == (1, 4 * 64, 32)
    per_group = resized.reshape(4, 64, 32)
    torch.testing.assert_close(per_group[:, 0, 0] - 0.5, torch.tensor([0.0, 0.25, 0.75, 1.0]))


def test_pretraining_runs_at_other_size_with_interpolation():
    model = build(SpectralGPTForPreTraining)
    outputs = model(pixels(size=24), interpolate_pos_encoding=True)
    assert outputs.logits.shape == (2, 72, 48) and torch.isfinite(outputs.loss)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(pixels(size=24))


@pytest.mark.parametrize(
    "values, message",
    [
        (torch.rand(6, 16, 16), r"must have shape \(batch_size, num_bands, height, width\)"),
        (torch.rand(1, 7, 16, 16), "band count must be a multiple of 3"),
        (torch.rand(1, 6, 18, 16), "multiples of 4"),
    ],
)
def test_bad_pixel_values(values, message):
    with pytest.raises(ValueError, match=message):
        build(SpectralGPTModel)(values)


def test_bad_noise_shape():
    with pytest.raises(ValueError, match=r"noise must have shape \(2, 32\)"):
        build(SpectralGPTForPreTraining)(pixels(), noise=torch.rand(2, 16))


def test_initialisation_follows_the_original():
    model = build(SpectralGPTForPreTraining, tiny_config(hidden_size=256, intermediate_size=512, num_attention_heads=8))
    fc1 = model.spectralgpt.layers[0].mlp.fc1
    bound = math.sqrt(6 / (256 + 512))
    assert fc1.weight.abs().max() <= bound and fc1.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(fc1.bias) == 0
    projection = model.spectralgpt.embeddings.patch_embeddings.projection.weight
    conv_bound = math.sqrt(6 / (3 * 4 * 4 + 256))
    assert conv_bound * 0.9 < projection.abs().max() <= conv_bound
    spatial = model.spectralgpt.embeddings.position_embeddings.spatial
    assert 0.015 < spatial.std() < 0.025  # trunc_normal cut at +-2 (absolute), effectively N(0, 0.02)
    assert 0.01 < model.decoder.mask_token.std() < 0.03
    norm = model.spectralgpt.layernorm
    assert torch.equal(norm.weight, torch.ones(256)) and torch.equal(norm.bias, torch.zeros(256))


def test_save_load_round_trip_through_auto_classes(tmp_path):
    model = build(SpectralGPTForPreTraining)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert type(reloaded) is SpectralGPTForPreTraining
    noise = torch.rand(2, 32)
    torch.testing.assert_close(reloaded(pixels(), noise=noise).logits, model(pixels(), noise=noise).logits)

    encoder = AutoModel.from_pretrained(tmp_path).eval()
    assert type(encoder) is SpectralGPTModel
    torch.testing.assert_close(encoder(pixels()).last_hidden_state, model.spectralgpt(pixels()).last_hidden_state)


def test_loading_a_pretraining_head_from_an_encoder_initialises_the_decoder(tmp_path):
    encoder = build(SpectralGPTModel)
    encoder.save_pretrained(tmp_path)
    model = SpectralGPTForPreTraining.from_pretrained(tmp_path)
    torch.testing.assert_close(model.spectralgpt.layers[1].mlp.fc2.weight, encoder.layers[1].mlp.fc2.weight)
    assert 0.005 < model.decoder.mask_token.std() < 0.05
    assert model.decoder.prediction.weight.abs().max() > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_trainer_does_not_pass_item_counts_to_the_pretraining_loss():
    assert SpectralGPTForPreTraining.accepts_loss_kwargs is False


def test_encoder_compiles_with_fullgraph_and_matches_eager():
    """`_can_compile_fullgraph`: the forward traces as one graph. aot_eager checks the tracing without inductor's
    C++ code generation, which would make this test slow."""
    assert SpectralGPTModel._can_compile_fullgraph
    model = build(SpectralGPTModel)
    with torch.no_grad():
        eager = model(pixels())
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")(pixels())
    torch.testing.assert_close(compiled.last_hidden_state, eager.last_hidden_state)
    torch.testing.assert_close(compiled.pooler_output, eager.pooler_output)


HEAVY_IMPORT_CHECK = """
import ast, sys, tempfile
from pathlib import Path

import spectralgpt_hf
from spectralgpt_hf import SpectralGPTConfig, SpectralGPTModel
from transformers import AutoModel

HEAVY = {"rasterio", "datasets", "accelerate", "pyarrow", "tensorboardX"}


def top_level_imports(path):
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            yield node.module.split(".")[0]


def check():
    # transformers itself imports accelerate whenever it is installed (transformers.integrations.accelerate, through
    # modeling_utils): only rasterio and datasets are checked in sys.modules, accelerate in our own sources.
    assert not {"rasterio", "datasets"} & set(sys.modules), sorted({"rasterio", "datasets"} & set(sys.modules))
    for name, module in list(sys.modules.items()):
        if name.startswith("spectralgpt_hf") and getattr(module, "__file__", None):
            heavy = HEAVY & set(top_level_imports(module.__file__))
            assert not heavy, f"{name} imports {sorted(heavy)} at import time"


check()
folder = tempfile.mkdtemp()
config = SpectralGPTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=8)
SpectralGPTModel(config).save_pretrained(folder)
SpectralGPTModel.from_pretrained(folder)
AutoModel.from_pretrained(folder)
check()
print("ok")
"""


def test_import_and_from_pretrained_need_no_extra():
    """The core install (no geo or train extra) imports the package and loads a saved model."""
    result = subprocess.run([sys.executable, "-c", HEAVY_IMPORT_CHECK], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_missing_extra_names_the_pip_command():
    from spectralgpt_hf.utils.extras import requires_extra

    with pytest.raises(ImportError, match=r"needs the 'geo' extra \(rasterio[^)]*\).*pip install 'spectralgpt-hf\[geo\]'"):
        with requires_extra("geo"):
            import spectralgpt_hf_no_such_module  # noqa: F401
    with pytest.raises(ValueError, match="Unknown extra"):
        with requires_extra("gpu"):
            pass


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_attention_dropout_acts_in_training_only(attn_implementation):
    config = tiny_config(attention_probs_dropout_prob=0.5, attn_implementation=attn_implementation)
    model = build(SpectralGPTModel, config)
    without_dropout = build(SpectralGPTModel, tiny_config(attn_implementation=attn_implementation))
    without_dropout.load_state_dict(model.state_dict())
    pixel_values = torch.randn(2, config.num_bands, config.image_size, config.image_size)
    with torch.no_grad():
        evaluated = model(pixel_values).last_hidden_state
        torch.testing.assert_close(evaluated, without_dropout(pixel_values).last_hidden_state)
        torch.manual_seed(0)
        trained = model.train()(pixel_values).last_hidden_state
    assert not torch.allclose(trained, evaluated, atol=1e-3)
