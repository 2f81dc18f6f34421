"""Downstream heads on tiny configurations: classification, segmentation, change detection, the backbone and UperNet,
and the conversion of the original downstream checkpoints (layouts, detection, strictness)."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoModelForImageClassification,
    AutoModelForSemanticSegmentation,
    Trainer,
    TrainingArguments,
    UperNetConfig,
    UperNetForSemanticSegmentation,
)

from testing_utils import tiny_config
from spectralgpt_hf import (
    CheckpointConversionError,
    SpectralGPTBackbone,
    SpectralGPTForChangeDetection,
    SpectralGPTForImageClassification,
    SpectralGPTForPreTraining,
    SpectralGPTForSemanticSegmentation,
    SpectralGPTImageProcessor,
    SpectralGPTModel,
    convert_original_checkpoint,
    upernet_from_pretrained,
)

def pixels(batch=2, bands=6, size=32, seed=0):
    return torch.rand(batch, bands, size, size, generator=torch.Generator().manual_seed(seed))


def build(model_class, config=None, seed=0):
    torch.manual_seed(seed)
    return model_class(config or tiny_config()).eval()


# Classification


def test_default_classifier_is_a_linear_layer_on_the_encoder_pooler():
    model = build(SpectralGPTForImageClassification, tiny_config(num_labels=3))
    with torch.no_grad():
        logits = model(pixels()).logits
        pooled = model.spectralgpt(pixels()).pooler_output
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits, model.classifier(pooled))
    names = dict(model.named_parameters())
    assert "spectralgpt.embeddings.position_embeddings.spatial" in names
    assert "spectralgpt.embeddings.position_embeddings.joint" not in names


def test_original_classifier_layout_joint_table_and_pool_without_token_0():
    config = tiny_config(num_labels=3, position_embedding_type="joint", pool_excludes_first_token=True)
    model = build(SpectralGPTForImageClassification, config)
    table = model.spectralgpt.embeddings.position_embeddings.joint
    assert table.shape == (1, config.num_tokens, 32) and not table.any()
    tables = [name for name, _ in model.named_parameters() if "position_embeddings" in name]
    assert tables == ["spectralgpt.embeddings.position_embeddings.joint"]

    with torch.no_grad():
        table.normal_()  # a trained table: the input must see it
        outputs = model(pixels(), output_hidden_states=True)
        last_block = outputs.hidden_states[-1]
        expected = model.classifier(model.spectralgpt.layernorm(last_block[:, 1:].mean(dim=1)))
        embeddings = model.spectralgpt.embeddings(pixels())
        tokens = model.spectralgpt.embeddings.patch_embeddings(pixels())
    torch.testing.assert_close(outputs.logits, expected)
    torch.testing.assert_close(embeddings, tokens + table)

    with pytest.raises(ValueError, match="joint position table .* cannot be resized"):
        model(pixels(size=48), interpolate_pos_encoding=True)


def test_new_classifier_starts_as_the_original_fine_tuning():
    model = build(SpectralGPTForImageClassification, tiny_config(num_labels=5))
    weight = model.classifier.weight
    assert 0 < weight.abs().max() < 1e-4  # trunc_normal(std=2e-5)
    assert not model.classifier.bias.any()


def test_single_label_loss_is_cross_entropy_and_uses_trainer_item_counts():
    model = build(SpectralGPTForImageClassification, tiny_config(num_labels=3))
    labels = torch.tensor([0, 2])
    outputs = model(pixels(), labels=labels)
    torch.testing.assert_close(outputs.loss, nn.functional.cross_entropy(outputs.logits, labels))
    assert model.config.problem_type == "single_label_classification"
    assert model.accepts_loss_kwargs
    # Trainer passes the item count of the whole accumulated batch
    loss = model(pixels(), labels=labels, num_items_in_batch=torch.tensor(4)).loss
    torch.testing.assert_close(loss, nn.functional.cross_entropy(outputs.logits, labels, reduction="sum") / 4)


def test_single_label_loss_takes_class_probabilities_as_soft_targets():
    config = tiny_config(num_labels=3, problem_type="single_label_classification")
    model = build(SpectralGPTForImageClassification, config)
    probabilities = torch.tensor([[0.7, 0.1, 0.2], [0.0, 0.4, 0.6]])
    outputs = model(pixels(), labels=probabilities)
    expected = -(probabilities * outputs.logits.log_softmax(-1)).sum(-1)
    torch.testing.assert_close(outputs.loss, expected.mean())
    torch.testing.assert_close(model(pixels(), labels=probabilities, num_items_in_batch=4).loss, expected.sum() / 4)
    # one-hot probabilities give the loss of the class ids
    one_hot = model(pixels(), labels=nn.functional.one_hot(torch.tensor([0, 2]), 3).float()).loss
    torch.testing.assert_close(one_hot, model(pixels(), labels=torch.tensor([0, 2])).loss)


def test_multi_label_loss_is_bce_and_takes_no_item_count():
    model = build(SpectralGPTForImageClassification, tiny_config(num_labels=3))
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    outputs = model(pixels(), labels=labels)
    torch.testing.assert_close(outputs.loss, nn.functional.binary_cross_entropy_with_logits(outputs.logits, labels))
    assert model.config.problem_type == "multi_label_classification"
    assert not model.accepts_loss_kwargs


@pytest.mark.parametrize(
    "problem_type, accepts",
    [("single_label_classification", True), ("multi_label_classification", False), (None, False)],
)
def test_trainer_passes_item_counts_only_to_the_single_label_loss(problem_type, accepts, tmp_path):
    model = build(SpectralGPTForImageClassification, tiny_config(num_labels=3, problem_type=problem_type))
    trainer = Trainer(model=model, args=TrainingArguments(output_dir=tmp_path, use_cpu=True, report_to=[]))
    assert trainer.model_accepts_loss_kwargs is accepts


def test_classifier_round_trip_and_start_from_an_encoder(tmp_path):
    config = tiny_config(num_labels=3, id2label={0: "crop", 1: "water", 2: "forest"})
    model = build(SpectralGPTForImageClassification, config)
    model.save_pretrained(tmp_path / "classifier")
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "classifier").eval()
    assert isinstance(loaded, SpectralGPTForImageClassification)
    assert loaded.config.id2label == {0: "crop", 1: "water", 2: "forest"}
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels()).logits, model(pixels()).logits)

    encoder = build(SpectralGPTModel)
    encoder.save_pretrained(tmp_path / "encoder")
    fresh = AutoModelForImageClassification.from_pretrained(tmp_path / "encoder", num_labels=4)
    assert fresh.classifier.out_features == 4
    for name, tensor in encoder.state_dict().items():
        torch.testing.assert_close(fresh.spectralgpt.state_dict()[name], tensor, msg=name)


@pytest.mark.parametrize(
    "checkpointing",
    [{}, {"use_reentrant": True}],
    ids=["non-reentrant", "reentrant-with-input-grads"],
)
def test_gradient_checkpointing_with_frozen_patch_embeddings(checkpointing):
    """The PEFT / LoRA set-up: frozen embeddings, checkpointed blocks. transformers' own test skips (it looks for a
    `.weight` on the patch embedding); reentrant checkpointing needs `enable_input_require_grads`, which hooks
    `get_input_embeddings`, so that the first block's input requires a gradient."""

    def gradients(checkpointing_kwargs):
        model = build(SpectralGPTForImageClassification, tiny_config(num_labels=3)).train()
        model.spectralgpt.embeddings.requires_grad_(False)
        if checkpointing_kwargs is not None:
            model.activation_checkpointing_enable(checkpointing_kwargs or None)
            if checkpointing_kwargs.get("use_reentrant"):
                model.enable_input_require_grads()
        model(pixels(), labels=torch.tensor([0, 2])).loss.backward()
        return {name: p.grad for name, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(None), gradients(checkpointing)
    assert not any(name.startswith("spectralgpt.embeddings.") for name in checkpointed)
    assert "spectralgpt.layers.0.attention.q_proj.weight" in checkpointed  # the block right after the frozen ones
    assert checkpointed.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], msg=name)


# Segmentation and change detection


def test_spectral_fusion_is_a_weighted_sum_over_groups_in_token_order():
    model = build(SpectralGPTForSemanticSegmentation)
    fusion = model.spectral_fusion
    torch.testing.assert_close(fusion.weight, torch.full((1, 2), 0.5))  # starts as the mean over groups
    with torch.no_grad():
        fusion.weight.copy_(torch.tensor([[2.0, -1.0]]))
        fusion.bias.fill_(0.25)
    tokens = torch.randn(1, 2 * 4 * 4, 32)
    fused = fusion(tokens, (2, 4, 4))
    # token index = group * 16 + row * 4 + col
    row, col, channel = 1, 3, 5
    expected = 2.0 * tokens[0, row * 4 + col, channel] - tokens[0, 16 + row * 4 + col, channel] + 0.25
    assert fused.shape == (1, 32, 4, 4)
    torch.testing.assert_close(fused[0, channel, row, col], expected)


def test_segmentation_reads_the_last_block_without_final_norm():
    model = build(SpectralGPTForSemanticSegmentation, tiny_config(num_labels=5))
    assert model.spectralgpt.layernorm is None
    with torch.no_grad():
        outputs = model(pixels(), output_hidden_states=True)
        tokens = model.spectralgpt(pixels()).last_hidden_state
        expected = model.decode_head(model.neck(model.spectral_fusion(tokens, (2, 4, 4))))
    assert outputs.logits.shape == (2, 5, 32, 32)
    torch.testing.assert_close(outputs.hidden_states[-1], tokens)
    torch.testing.assert_close(outputs.logits, expected)


def test_neck_levels_and_decoder_sizes_follow_the_config():
    model = build(SpectralGPTForSemanticSegmentation)
    with torch.no_grad():
        feature_map = torch.randn(2, 32, 4, 4)
        levels = model.neck(feature_map)
    assert [tuple(level.shape[1:]) for level in levels] == [(4, 32, 32), (8, 16, 16), (16, 8, 8), (16, 4, 4)]
    assert [block.conv.in_channels for block in model.decode_head.lateral_blocks] == [4, 8, 16]
    assert model.decode_head.pyramid_pooling.pool_scales == [1, 2, 3, 6]
    assert model.decode_head.classifier.kernel_size == (3, 3)


def test_segmentation_loss_respects_the_ignore_index():
    model = build(SpectralGPTForSemanticSegmentation, tiny_config(num_labels=5))
    labels = torch.randint(0, 5, (2, 32, 32), generator=torch.Generator().manual_seed(1))
    labels[:, :10] = 255
    outputs = model(pixels(), labels=labels)
    torch.testing.assert_close(outputs.loss, nn.functional.cross_entropy(outputs.logits, labels, ignore_index=255))

    model.config.semantic_loss_ignore_index = 0
    outputs = model(pixels(), labels=labels.clamp(max=4))
    expected = nn.functional.cross_entropy(outputs.logits, labels.clamp(max=4), ignore_index=0)
    torch.testing.assert_close(outputs.loss, expected)
    assert SpectralGPTForSemanticSegmentation.accepts_loss_kwargs is False


def test_segmentation_backward_reaches_every_parameter():
    model = build(SpectralGPTForSemanticSegmentation, tiny_config(num_labels=5)).train()
    model(pixels(), labels=torch.randint(0, 5, (2, 32, 32))).loss.backward()
    without_grad = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert without_grad == []


def test_other_patch_sizes_give_logits_at_input_resolution():
    model = build(SpectralGPTForSemanticSegmentation, tiny_config(num_labels=3, image_size=64, patch_size=16))
    with torch.no_grad():
        assert model(pixels(size=64)).logits.shape == (2, 3, 64, 64)


def test_segmentation_round_trip_through_auto_class(tmp_path):
    model = build(SpectralGPTForSemanticSegmentation, tiny_config(num_labels=4))
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSemanticSegmentation.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, SpectralGPTForSemanticSegmentation)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels()).logits, model(pixels()).logits)


def test_dropout_placement_follows_the_config():
    seg = build(SpectralGPTForSemanticSegmentation)
    change = build(SpectralGPTForChangeDetection, tiny_config(neck_dropout_prob=0.0, pyramid_pooling_dropout_prob=0.0))
    for model, neck_and_pooling in ((seg, 0.5), (change, 0.0)):
        head = model.decode_head
        assert {level.dropout.p for level in model.neck.levels} == {neck_and_pooling}
        assert head.pyramid_pooling.bottleneck.dropout.p == neck_and_pooling
        fpn_blocks = [*head.lateral_blocks, *head.output_blocks, head.fusion]
        assert {block.dropout.p for block in fpn_blocks} == {0.5}

    no_dropout = tiny_config(neck_dropout_prob=0.0, pyramid_pooling_dropout_prob=0.0, decode_head_dropout_prob=0.0)
    model = build(SpectralGPTForSemanticSegmentation, no_dropout)
    with torch.no_grad():
        evaluated = model(pixels()).logits
        trained = model.train()(pixels()).logits
    torch.testing.assert_close(trained, evaluated)


def test_change_detection_scores_the_difference_of_the_dates():
    model = build(SpectralGPTForChangeDetection)
    first, second = pixels(seed=0), pixels(seed=1)
    with torch.no_grad():
        outputs = model(first, second, output_hidden_states=True)
        unchanged_a = model(first, first).logits
        unchanged_b = model(second, second).logits
        tokens, tokens_2 = model.spectralgpt(first).last_hidden_state, model.spectralgpt(second).last_hidden_state
        fused = model.spectral_fusion(tokens, (2, 4, 4)) - model.spectral_fusion(tokens_2, (2, 4, 4))
        expected = model.decode_head(model.neck(fused))
    assert outputs.logits.shape == (2, 2, 32, 32)
    torch.testing.assert_close(outputs.logits, expected)
    # equal dates give a zero difference: the same scores whatever the image
    torch.testing.assert_close(unchanged_a, unchanged_b)
    torch.testing.assert_close(outputs.hidden_states[-1], tokens)
    torch.testing.assert_close(outputs.hidden_states_2[-1], tokens_2)


@pytest.mark.parametrize("weights", [None, [0.3, 1.7]])
def test_change_detection_loss_is_class_weighted_nll(weights):
    model = build(SpectralGPTForChangeDetection, tiny_config(change_detection_class_weights=weights))
    labels = torch.randint(0, 2, (2, 32, 32), generator=torch.Generator().manual_seed(3))
    labels[0, :5] = 255
    outputs = model(pixels(seed=0), pixels(seed=1), labels=labels)
    criterion = nn.NLLLoss(weight=None if weights is None else torch.tensor(weights), ignore_index=255)
    torch.testing.assert_close(outputs.loss, criterion(outputs.logits.log_softmax(dim=1), labels))
    assert SpectralGPTForChangeDetection.accepts_loss_kwargs is False


@pytest.mark.parametrize(
    "second, message",
    [
        (None, "needs both dates"),
        (pixels(bands=3), r"same shape .* pixel_values \(2, 6, 32, 32\) and pixel_values_2 \(2, 3, 32, 32\)"),
        (pixels(size=16), r"pixel_values_2 \(2, 6, 16, 16\)"),
        (pixels(batch=1), r"pixel_values_2 \(1, 6, 32, 32\)"),
    ],
)
def test_change_detection_refuses_mismatched_dates(second, message):
    model = build(SpectralGPTForChangeDetection)
    with pytest.raises(ValueError, match=message):
        model(pixels(), second)


def test_change_detection_round_trip(tmp_path):
    model = build(SpectralGPTForChangeDetection, tiny_config(change_detection_class_weights=[2.0, 1.0]))
    model.save_pretrained(tmp_path)
    loaded = SpectralGPTForChangeDetection.from_pretrained(tmp_path).eval()
    assert loaded.config.change_detection_class_weights == [2.0, 1.0]
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels(), pixels(seed=1)).logits, model(pixels(), pixels(seed=1)).logits)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"neck_hidden_sizes": [4, 8, 16]}, "must list the same number of levels"),
        ({"neck_hidden_sizes": [4, 8, 16, 8]}, r"neck_intermediate_sizes\[-1\] \(16\) must equal"),
        ({"neck_norm_groups": 3}, r"divisible by neck_norm_groups \(3\)"),
        ({"decode_head_norm_groups": 3}, r"decode_head_hidden_size \(8\) must be divisible"),
        ({"change_detection_class_weights": [1.0]}, "one non-negative weight per class"),
        ({"backbone_feature_scales": [4, 3]}, "powers of two"),
    ],
)
def test_invalid_head_configurations_raise_at_construction(kwargs, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        tiny_config(**kwargs)


def test_unknown_position_embedding_type():
    with pytest.raises(StrictDataclassFieldValidationError, match="expected one of"):
        tiny_config(position_embedding_type="sincos")


# Backbone and UperNet


def test_backbone_folds_groups_into_channels_and_builds_a_pyramid():
    backbone = build(SpectralGPTBackbone, tiny_config(num_hidden_layers=4, out_indices=[1, 2, 3, 4]))
    assert backbone.channels == [64, 64, 64, 64]  # hidden_size x 2 spectral groups
    with torch.no_grad():
        outputs = backbone(pixels())
        hidden_states = backbone(pixels(), output_hidden_states=True).hidden_states
    assert outputs.hidden_states is None
    shapes = [tuple(feature_map.shape) for feature_map in outputs.feature_maps]
    assert shapes == [(2, 64, 16, 16), (2, 64, 8, 8), (2, 64, 4, 4), (2, 64, 2, 2)]

    def folded(tokens):  # channel group * 32 + d at (row, col) holds token group * 16 + row * 4 + col
        return tokens.reshape(2, 2, 4, 4, 32).permute(0, 1, 4, 2, 3).reshape(2, 64, 4, 4)

    torch.testing.assert_close(outputs.feature_maps[2], folded(hidden_states[3]))
    torch.testing.assert_close(outputs.feature_maps[2][1, 32 + 7, 2, 1], hidden_states[3][1, 16 + 2 * 4 + 1, 7])
    upsampled = nn.functional.interpolate(folded(hidden_states[1]), scale_factor=4, mode="bilinear")
    torch.testing.assert_close(outputs.feature_maps[0], upsampled)
    torch.testing.assert_close(outputs.feature_maps[3], nn.functional.max_pool2d(folded(hidden_states[4]), 2))


def test_backbone_scales_and_band_count_errors():
    backbone = build(SpectralGPTBackbone, tiny_config(out_indices=[2]))
    with torch.no_grad():
        assert backbone(pixels()).feature_maps[0].shape == (2, 64, 4, 4)  # one map: kept at token resolution
    with pytest.raises(ValueError, match="takes 6 bands"):
        backbone(pixels(bands=9))
    with pytest.raises(ValueError, match="one scale per out_indices entry"):
        SpectralGPTBackbone(tiny_config(out_indices=[1, 2], backbone_feature_scales=[2]))


def upernet_kwargs():
    return dict(num_labels=3, hidden_size=16, auxiliary_channels=8)


def test_upernet_trains_and_reloads_with_a_spectralgpt_backbone(tmp_path):
    backbone_config = tiny_config(num_hidden_layers=4, out_indices=[1, 2, 3, 4])
    torch.manual_seed(0)
    model = UperNetForSemanticSegmentation(UperNetConfig(backbone_config=backbone_config, **upernet_kwargs()))
    assert isinstance(model.backbone, SpectralGPTBackbone)
    labels = torch.randint(0, 3, (2, 32, 32))
    outputs = model(pixels(), labels=labels)
    assert outputs.logits.shape == (2, 3, 32, 32) and torch.isfinite(outputs.loss)
    outputs.loss.backward()
    assert model.backbone.spectralgpt.layers[0].mlp.fc1.weight.grad.abs().sum() > 0

    model.eval().save_pretrained(tmp_path)
    loaded = AutoModelForSemanticSegmentation.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, UperNetForSemanticSegmentation)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels()).logits, model(pixels()).logits)


def test_upernet_from_pretrained_starts_from_the_checkpoint_encoder(tmp_path):
    pretrained = build(SpectralGPTForPreTraining, tiny_config(num_hidden_layers=4))
    pretrained.save_pretrained(tmp_path)
    model = upernet_from_pretrained(
        tmp_path, out_indices=(1, 2, 3, 4), backbone_kwargs={"drop_path_rate": 0.1}, **upernet_kwargs()
    )
    assert model.backbone.out_indices == [1, 2, 3, 4]
    assert model.backbone.spectralgpt.layers[-1].drop_path.drop_prob == pytest.approx(0.1)
    encoder = {k: v for k, v in pretrained.spectralgpt.state_dict().items() if not k.startswith("layernorm.")}
    backbone = model.backbone.spectralgpt.state_dict()
    assert sorted(backbone) == sorted(encoder)
    for name, tensor in encoder.items():
        torch.testing.assert_close(backbone[name], tensor, msg=name)
    with torch.no_grad():
        assert model.eval()(pixels()).logits.shape == (2, 3, 32, 32)

    weights = load_file(tmp_path / "model.safetensors")
    del weights["spectralgpt.layers.2.mlp.fc2.bias"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"lacks encoder weights \['spectralgpt.layers.2.mlp.fc2.bias'\]"):
        upernet_from_pretrained(tmp_path, out_indices=(1, 2, 3, 4), **upernet_kwargs())


# Conversion of the original downstream checkpoints (original key layouts, tiny sizes)

DIM, GRID, GROUPS = 32, 4, 4  # 12 bands of 3, 32 px of 8
TINY_OVERRIDES = {"num_attention_heads": 4, "neck_norm_groups": 4, "decode_head_norm_groups": 4}


def encoder_manifest(joint=False):
    shapes = (
        [("pos_embed", (1, GROUPS * GRID * GRID, DIM))]
        if joint
        else [("pos_embed_spatial", (1, GRID * GRID, DIM)), ("pos_embed_temporal", (1, GROUPS, DIM))]
    )
    shapes += [("patch_embed.proj.weight", (DIM, 1, 3, 8, 8)), ("patch_embed.proj.bias", (DIM,))]
    for i in range(2):
        block = f"blocks.{i}"
        shapes += [(f"{block}.norm1.weight", (DIM,)), (f"{block}.norm1.bias", (DIM,))]
        for name in ("q", "k", "v", "proj"):
            shapes += [(f"{block}.attn.{name}.weight", (DIM, DIM)), (f"{block}.attn.{name}.bias", (DIM,))]
        shapes += [(f"{block}.norm2.weight", (DIM,)), (f"{block}.norm2.bias", (DIM,))]
        shapes += [(f"{block}.mlp.fc1.weight", (64, DIM)), (f"{block}.mlp.fc1.bias", (64,))]
        shapes += [(f"{block}.mlp.fc2.weight", (DIM, 64)), (f"{block}.mlp.fc2.bias", (DIM,))]
    return shapes + [("norm.weight", (DIM,)), ("norm.bias", (DIM,))]


def classifier_manifest(num_classes=5):
    return encoder_manifest(joint=True) + [("head.weight", (num_classes, DIM)), ("head.bias", (num_classes,))]


def conv_block(name, out_channels, in_channels, transposed=None):
    shapes = [(f"{name}.0.weight", (out_channels, in_channels, 1, 1)), (f"{name}.0.bias", (out_channels,))]
    shapes += [(f"{name}.1.weight", (out_channels,)), (f"{name}.1.bias", (out_channels,))]
    if transposed:
        upsampled_channels, factor = transposed
        shapes += [(f"{name}.3.weight", (out_channels, upsampled_channels, factor, factor))]
        shapes += [(f"{name}.3.bias", (upsampled_channels,))]
    return shapes


def dense_manifest(num_classes):
    """The SegMunich / OSCD layout with neck levels of 8->4, 8->8, 16->16 and 16 channels and a decoder of 8."""
    shapes = encoder_manifest() + [("cls_seg.0.weight", (num_classes, 8, 3, 3)), ("cls_seg.0.bias", (num_classes,))]
    for i in range(4):
        shapes += [(f"decoder.PPMHead.psp_modules.{i}.1.weight", (8, 16, 1, 1))]
        shapes += [(f"decoder.PPMHead.psp_modules.{i}.1.bias", (8,))]
    shapes += conv_block("decoder.PPMHead.final", 8, 16 + 4 * 8)
    for number, channels in ((1, 16), (2, 8), (3, 4)):
        shapes += conv_block(f"decoder.Conv_fuse{number}", 8, channels)
        shapes += conv_block(f"decoder.Conv_fuse{number}_", 8, 8)
    shapes += conv_block("decoder.fuse_all", 8, 4 * 8)
    shapes += [("decoder.conv_x1.weight", (8, 8, 1, 1)), ("decoder.conv_x1.bias", (8,))]
    shapes += conv_block("conv0", 8, DIM, (4, 8)) + conv_block("conv1", 8, DIM, (8, 4))
    shapes += conv_block("conv2", 16, DIM, (16, 2)) + conv_block("conv3", 16, DIM)
    return shapes + [("fc.0.weight", (1, GROUPS)), ("fc.0.bias", (1,))]


@pytest.fixture
def write_original(make_weights, tmp_path):
    def write(manifest, layout, state_dict=None):
        path = tmp_path / f"{layout}.pth"
        state_dict = state_dict or make_weights.make_state_dict(manifest, seed=0)
        make_weights.write_original_checkpoint(layout, state_dict, path, args={"model": "tiny"})
        return path, state_dict

    return write


def test_classifier_file_converts_to_the_original_layout(write_original, tmp_path):
    path, state_dict = write_original(classifier_manifest(), "classifier")
    model = convert_original_checkpoint(path, tmp_path / "out", config_overrides=TINY_OVERRIDES)
    config = model.config
    assert type(model) is SpectralGPTForImageClassification
    assert (config.position_embedding_type, config.pool_excludes_first_token) == ("joint", True)
    assert (config.num_labels, config.num_bands, config.image_size, config.drop_path_rate) == (5, 12, 32, 0.2)
    torch.testing.assert_close(model.spectralgpt.embeddings.position_embeddings.joint, state_dict["pos_embed"])
    torch.testing.assert_close(model.classifier.weight, state_dict["head.weight"])
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "out")
    assert reloaded.config.position_embedding_type == "joint"

    with pytest.raises(CheckpointConversionError, match="pos_embed has 64 tokens, not a multiple of the 3"):
        convert_original_checkpoint(path, config_overrides={**TINY_OVERRIDES, "num_bands": 9})


@pytest.mark.parametrize(
    "layout, num_classes, kind, expected",
    [
        ("segmentation", 13, None, SpectralGPTForSemanticSegmentation),
        ("segmentation", 2, None, SpectralGPTForSemanticSegmentation),  # SegMunich's file layout decides
        ("change_detection", 2, None, SpectralGPTForChangeDetection),
        ("change_detection", 13, None, SpectralGPTForSemanticSegmentation),  # OSCD has 2 classes
        ("segmentation", 2, "change_detection", SpectralGPTForChangeDetection),
    ],
)
def test_dense_files_are_told_apart_and_configured(write_original, layout, num_classes, kind, expected, tmp_path):
    path, state_dict = write_original(dense_manifest(num_classes), layout)
    model = convert_original_checkpoint(path, tmp_path / "out", config_overrides=TINY_OVERRIDES, kind=kind)
    if expected is SpectralGPTForSemanticSegmentation:  # SegMunich's processor: 10 bands and their mean twice
        assert SpectralGPTImageProcessor.from_pretrained(tmp_path / "out").band_mean_channels == 2
    else:
        assert not (tmp_path / "out" / "preprocessor_config.json").exists()
    config = model.config
    assert type(model) is expected
    assert (config.num_labels, config.drop_path_rate, config.num_bands, config.image_size) == (num_classes, 0.5, 12, 32)
    assert (config.neck_intermediate_sizes, config.neck_hidden_sizes) == ([8, 8, 16, 16], [4, 8, 16, 16])
    assert config.decode_head_hidden_size == 8
    is_change_detection = expected is SpectralGPTForChangeDetection
    assert config.neck_dropout_prob == config.pyramid_pooling_dropout_prob == (0.0 if is_change_detection else 0.5)
    assert model.spectralgpt.layernorm is None  # the original's unused final norm is left out
    head = model.decode_head
    torch.testing.assert_close(head.lateral_blocks[2].conv.weight, state_dict["decoder.Conv_fuse1.0.weight"])
    torch.testing.assert_close(head.output_blocks[0].norm.bias, state_dict["decoder.Conv_fuse3_.1.bias"])
    torch.testing.assert_close(model.neck.levels[1].upsample.weight, state_dict["conv1.3.weight"])
    torch.testing.assert_close(model.spectral_fusion.weight, state_dict["fc.0.weight"])


def test_kind_must_fit_the_file(write_original):
    path, _ = write_original(dense_manifest(13), "segmentation")
    with pytest.raises(CheckpointConversionError, match="cannot be converted as 'classifier': it holds a segmentation"):
        convert_original_checkpoint(path, config_overrides=TINY_OVERRIDES, kind="classifier")
    with pytest.raises(ValueError, match="kind must be one of"):
        convert_original_checkpoint(path, kind="detection")


@pytest.mark.parametrize(
    "manifest, layout, extra, removed, resized, expected",
    [
        (
            classifier_manifest(),
            "classifier",
            "head.extra.weight",
            "head.bias",
            "norm.weight",
            ["classifier.bias", "spectralgpt.layernorm.weight: checkpoint (33,) vs model (32,)"],
        ),
        (
            dense_manifest(13),
            "segmentation",
            "decoder.extra.weight",
            "decoder.Conv_fuse2_.1.bias",
            "decoder.fuse_all.0.bias",
            ["decode_head.output_blocks.1.norm.bias", "decode_head.fusion.conv.bias: checkpoint (33,) vs model (8,)"],
        ),
        (
            dense_manifest(2),
            "change_detection",
            "fc.1.weight",
            "fc.0.bias",
            "conv1.3.bias",
            ["spectral_fusion.bias", "neck.levels.1.upsample.bias: checkpoint (33,) vs model (8,)"],
        ),
    ],
)
def test_unmapped_missing_and_mis_shaped_keys_are_listed(
    write_original, make_weights, manifest, layout, extra, removed, resized, expected
):
    state_dict = make_weights.make_state_dict(manifest, seed=0)
    state_dict[extra] = torch.zeros(3)
    del state_dict[removed]
    state_dict[resized] = torch.zeros(33)
    path, _ = write_original(manifest, layout, state_dict)
    with pytest.raises(CheckpointConversionError) as error:
        convert_original_checkpoint(path, config_overrides=TINY_OVERRIDES)
    message = str(error.value)
    assert f"Cannot convert this {layout} checkpoint" in message
    assert extra in message
    for text in expected:
        assert text in message
