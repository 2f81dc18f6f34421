import pytest
from transformers import Trainer, TrainingArguments

from spectralgpt_hf import SpectralGPTConfig, SpectralGPTForPreTraining
from spectralgpt_hf.training.optimization import (
    global_batch_size,
    layer_decay_optimizer,
    layer_decay_parameter_groups,
    layer_index,
    scaled_learning_rate,
    weight_decay_parameter_groups,
)
from spectralgpt_hf.training.recipes import RecipeTrainingArguments


def tiny_model():
    config = SpectralGPTConfig(
        image_size=16, patch_size=4, num_bands=6, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=32, decoder_hidden_size=8, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )
    return SpectralGPTForPreTraining(config)


def test_layer_index_of_each_part():
    assert layer_index("spectralgpt.embeddings.patch_embeddings.projection.weight", 12) == 0
    assert layer_index("spectralgpt.embeddings.position_embeddings.spatial", 12) == 0
    assert layer_index("spectralgpt.layers.0.mlp.fc1.weight", 12) == 1
    assert layer_index("backbone.spectralgpt.layers.11.attention.q_proj.weight", 12) == 12
    assert layer_index("spectralgpt.layernorm.weight", 12) == 13
    assert layer_index("classifier.weight", 12) == 13
    assert layer_index("decoder.layers.0.mlp.fc1.weight", 12) == 13


def test_groups_scale_learning_rate_and_skip_decay_where_the_recipe_does():
    model = tiny_model()
    groups = layer_decay_parameter_groups(model, learning_rate=1.0, weight_decay=0.05, layer_decay=0.5)
    by_parameter = {id(p): group for group in groups for p in group["params"]}
    assert sum(len(group["params"]) for group in groups) == len(list(model.parameters()))
    named = dict(model.named_parameters())
    expect = {
        "spectralgpt.embeddings.patch_embeddings.projection.weight": (0.5**4, 0.05),
        "spectralgpt.embeddings.position_embeddings.spatial": (0.5**4, 0.0),
        "spectralgpt.layers.0.attention.q_proj.weight": (0.5**3, 0.05),
        "spectralgpt.layers.0.attention.q_proj.bias": (0.5**3, 0.0),
        "spectralgpt.layers.2.layernorm_after.weight": (0.5, 0.0),
        "spectralgpt.layernorm.weight": (1.0, 0.0),
        "decoder.mask_token": (1.0, 0.0),
        "decoder.prediction.weight": (1.0, 0.05),
    }
    for name, (lr, weight_decay) in expect.items():
        group = by_parameter[id(named[name])]
        assert (group["lr"], group["weight_decay"]) == (pytest.approx(lr), weight_decay), name


def test_layer_decay_optimizer_plugs_into_trainer(tmp_path):
    model = tiny_model()
    args = TrainingArguments(tmp_path, learning_rate=1e-3, weight_decay=0.05, use_cpu=True, report_to=[])
    trainer = Trainer(model=model, args=args, optimizer_cls_and_kwargs=layer_decay_optimizer(model, args))
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    learning_rates = sorted({group["lr"] for group in trainer.optimizer.param_groups})
    assert learning_rates == pytest.approx([1e-3 * 0.75**k for k in (4, 3, 2, 1, 0)])
    assert type(trainer.optimizer).__name__ == "AdamW"


def test_bad_layer_decay():
    with pytest.raises(ValueError, match="layer_decay must be in"):
        layer_decay_parameter_groups(tiny_model(), 1.0, 0.0, layer_decay=0.0)


def test_learning_rate_scales_with_the_global_batch():
    # 16 per device x 8 accumulation x 2 processes = 256 samples per step: the base rate itself.
    assert global_batch_size(16, 8, 2) == 256
    assert scaled_learning_rate(1e-4, 16, 8, 2) == pytest.approx(1e-4)
    # The original stage 1: 16 x 32 x 8 = 4096 samples per step.
    assert scaled_learning_rate(2e-4, 16, 32, 8) == pytest.approx(2e-4 * 16)
    assert scaled_learning_rate(2e-4, 64) == pytest.approx(5e-5)


def test_recipes_scale_the_learning_rate_with_the_shared_rule(tmp_path):
    args = RecipeTrainingArguments(
        tmp_path, learning_rate=None, base_learning_rate=2e-4, per_device_train_batch_size=4,
        gradient_accumulation_steps=2, use_cpu=True, report_to=[],
    )  # fmt: skip
    assert args.learning_rate == pytest.approx(scaled_learning_rate(2e-4, 4, 2, args.world_size)) == 6.25e-6


def test_adamw_kernel_options_pick_fused_where_the_device_has_it():
    import torch

    from spectralgpt_hf.training.optimization import adamw_kernel_options

    assert adamw_kernel_options("cpu", "foreach") == {"foreach": True}
    assert adamw_kernel_options("cpu", "for_loop") == {"foreach": False}
    assert adamw_kernel_options("cuda") == {"fused": True}
    with pytest.raises(ValueError, match="Unknown AdamW"):
        adamw_kernel_options("cpu", "apex")
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), **adamw_kernel_options("cpu"))
    model(torch.rand(2, 6, 16, 16)).loss.backward()
    optimizer.step()  # fused on the CPU where this torch has the kernel, else foreach


def test_trainer_compiles_the_model(tmp_path):
    """Trainer's torch_compile wraps the model; training steps and the saved model are those of the plain one."""
    import torch
    from datasets import Dataset

    data = Dataset.from_dict({"pixel_values": torch.rand(4, 6, 16, 16).numpy()}).with_format("torch")
    model = tiny_model()
    args = TrainingArguments(
        tmp_path, max_steps=2, per_device_train_batch_size=2, report_to="none", use_cpu=True, torch_compile=True,
        torch_compile_backend="aot_eager", save_strategy="no", logging_steps=1,
    )  # fmt: skip
    trainer = Trainer(model, args, train_dataset=data)
    output = trainer.train()
    assert output.training_loss > 0
    trainer.save_model(tmp_path / "model")
    reloaded = SpectralGPTForPreTraining.from_pretrained(tmp_path / "model")
    assert reloaded.state_dict().keys() == model.state_dict().keys()


def test_frozen_parameters_are_left_out_of_every_group(tmp_path):
    model = tiny_model()
    model.spectralgpt.embeddings.requires_grad_(False)
    model.spectralgpt.layers[0].requires_grad_(False)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert 0 < len(trainable) < len(list(model.parameters()))
    for groups in (
        layer_decay_parameter_groups(model, learning_rate=1.0, weight_decay=0.05),
        weight_decay_parameter_groups(model, weight_decay=0.05),
    ):
        grouped = [id(p) for group in groups for p in group["params"]]
        assert sorted(grouped) == sorted(trainable)
    # With the embeddings and block 0 frozen, the two lowest learning rates have no group.
    learning_rates = {group["lr"] for group in layer_decay_parameter_groups(model, 1.0, 0.05, layer_decay=0.5)}
    assert sorted(learning_rates) == pytest.approx([0.5**2, 0.5, 1.0])
