"""The fine-tuning recipes of examples/ end to end, for two steps on tiny copies of the real dataset layouts,
starting from a tiny original pretraining checkpoint converted with the converter; and the recipe options of
spectralgpt_hf.training.recipes."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import AutoModelForImageClassification, AutoModelForSemanticSegmentation

from spectralgpt_hf import (
    SpectralGPTConfig,
    SpectralGPTForChangeDetection,
    SpectralGPTForImageClassification,
    SpectralGPTImageProcessor,
    convert_original_checkpoint,
)
from spectralgpt_hf.training.recipes import RecipeTrainer, RecipeTrainingArguments, parse_arguments

import layouts

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The heads' sizes are config fields, so the pretraining checkpoint's config sets those of the heads built from it.
TINY_HEADS = dict(
    num_attention_heads=4, neck_intermediate_sizes=[32, 32, 64, 64], neck_hidden_sizes=[16, 32, 64, 64],
    decode_head_hidden_size=32,
)  # fmt: skip


def convert_tiny_checkpoint(make_weights, folder, grid):
    """A 2-block, hidden-64 original pretraining checkpoint of `grid` x `grid` patches (8 px each), converted."""
    state_dict = make_weights.make_state_dict(layouts.tiny_pretrain_manifest(grid=grid, dim=64), seed=0)
    make_weights.write_original_checkpoint("pretrain", state_dict, folder / "original.pth", args={"mask_ratio": 0.9})
    convert_original_checkpoint(folder / "original.pth", folder / "converted", config_overrides=TINY_HEADS)
    return folder / "converted"


@pytest.fixture(scope="module")
def pretrained(make_weights, tmp_path_factory):
    """32 px: the recipes size their crops and patches after the model."""
    return convert_tiny_checkpoint(make_weights, tmp_path_factory.mktemp("pretrained"), grid=4)


QUICK = dict(
    do_train=True, do_eval=True, max_steps=2, per_device_train_batch_size=2, gradient_accumulation_steps=1,
    per_device_eval_batch_size=2, eval_strategy="no", save_strategy="no", use_cpu=True, report_to="none", seed=0,
)  # fmt: skip


def command_line(options):
    return [item for name, value in options.items() for item in (f"--{name}", str(value))]


def run_script(name, pretrained, data_dir, output_dir, *options):
    paths = dict(model_name_or_path=pretrained, data_dir=data_dir, output_dir=output_dir)
    return load_script(name).main([*command_line({**paths, **QUICK}), *options])


def check_output(output_dir, auto_class, metric_names):
    """The folder loads as a model and an image processor, and holds finite evaluation metrics."""
    model = auto_class.from_pretrained(output_dir)
    image_processor = SpectralGPTImageProcessor.from_pretrained(output_dir)
    results = json.loads((output_dir / "eval_results.json").read_text())
    for name in ["eval_loss", *(f"eval_{name}" for name in metric_names)]:
        assert math.isfinite(results[name]), (name, results)
    assert json.loads((output_dir / "train_results.json").read_text())["train_loss"] > 0
    return model, image_processor


def test_eurosat(pretrained, data_dir, tmp_path):
    layouts.write_eurosat(data_dir, tmp_path)
    (tmp_path / "eurosat-train.txt").write_text("AnnualCrop_1.jpg\nPasture_300.jpg\nSeaLake_3000.jpg\n")
    (tmp_path / "eurosat-val.txt").write_text("Pasture_300.jpg\nSeaLake_3000.jpg\n")
    output_dir = tmp_path / "out"
    metrics = run_script("run_classification", pretrained, tmp_path, output_dir, "--dataset", "eurosat")
    assert metrics["eval_accuracy"] in (0.0, 0.5, 1.0)

    model, image_processor = check_output(output_dir, AutoModelForImageClassification, ["accuracy"])
    assert type(model) is SpectralGPTForImageClassification
    config = model.config
    assert (config.num_labels, config.id2label[9], config.label2id["SeaLake"]) == (10, "SeaLake", 9)
    assert (config.problem_type, config.drop_path_rate) == ("single_label_classification", 0.2)
    # the original evaluation transform, scaled to the 32 px model: Resize(int(32 / 0.875) = 36), CenterCrop(32)
    assert image_processor.normalization == "mean_std"
    assert (image_processor.size["height"], image_processor.crop_size["height"]) == (36, 32)
    training_args = torch.load(output_dir / "training_args.bin", weights_only=False)
    assert (training_args.label_smoothing_factor, training_args.layer_decay) == (0.1, 0.75)
    assert (training_args.mixup_alpha, training_args.cutmix_alpha) == (0.8, 1.0)


def test_bigearthnet(pretrained, data_dir, tmp_path):
    layouts.write_bigearthnet(data_dir, tmp_path)
    output_dir = tmp_path / "out"
    run_script("run_classification", pretrained, tmp_path, output_dir, "--dataset", "bigearthnet")
    model, image_processor = check_output(output_dir, AutoModelForImageClassification, ["micro_mAP"])
    assert (model.config.num_labels, model.config.problem_type) == (19, "multi_label_classification")
    assert image_processor.normalization == "sentinel_normalize"
    training_args = torch.load(output_dir / "training_args.bin", weights_only=False)
    assert (training_args.label_smoothing_factor, training_args.mixup_alpha, training_args.cutmix_alpha) == (0, 0, 0)


def test_segmunich_from_a_json_file(pretrained, data_dir, tmp_path):
    layouts.write_segmunich(data_dir, tmp_path, size=32)
    output_dir = tmp_path / "out"
    paths = dict(model_name_or_path=str(pretrained), data_dir=str(tmp_path), output_dir=str(output_dir))
    (tmp_path / "args.json").write_text(json.dumps({**paths, **QUICK}))
    load_script("run_segmentation").main([str(tmp_path / "args.json")])

    model, image_processor = check_output(
        output_dir, AutoModelForSemanticSegmentation, ["mean_iou", "overall_accuracy"]
    )
    assert (model.config.num_labels, model.config.id2label[4], model.config.drop_path_rate) == (13, "forests", 0.5)
    assert (image_processor.normalization, image_processor.band_mean_channels) == ("min_max", 2)
    training_args = torch.load(output_dir / "training_args.bin", weights_only=False)
    assert (training_args.lr_scheduler_type.value, training_args.lr_scheduler_kwargs["power"]) == ("polynomial", 0.9)


def test_segmunich_tiles_must_match_the_model(make_weights, data_dir, tmp_path):
    layouts.write_segmunich(data_dir, tmp_path, size=32)
    sixteen_px = convert_tiny_checkpoint(make_weights, tmp_path, grid=2)
    with pytest.raises(ValueError, match="tiles are 32 px but the model .* takes 16 px"):
        run_script("run_segmentation", sixteen_px, tmp_path, tmp_path / "out")


def test_oscd(pretrained, data_dir, tmp_path):
    layouts.write_oscd(data_dir, tmp_path)
    output_dir = tmp_path / "out"
    # 32 px patches every 63 px; the first 4 training patches all lie in city_a (264 x 264)
    run_script(
        "run_change_detection", pretrained, tmp_path / layouts.OSCD_IMAGES, output_dir,
        "--max_train_samples", "4", "--max_eval_samples", "2",
    )  # fmt: skip
    model, image_processor = check_output(output_dir, SpectralGPTForChangeDetection, ["f1", "precision", "recall"])
    changed = np.zeros((264, 264))
    changed[layouts.OSCD_CHANGE] = 1
    fraction = changed.mean()
    assert model.config.change_detection_class_weights == pytest.approx([10 * 2 * fraction, 2 * (1 - fraction)])
    assert (model.config.neck_dropout_prob, model.config.pyramid_pooling_dropout_prob) == (0.0, 0.0)
    assert model.config.id2label == {0: "no change", 1: "change"}
    assert image_processor.normalization == "min_max"

    # evaluation only, of the fine-tuned model
    evaluated = tmp_path / "evaluated"
    metrics = run_script(
        "run_change_detection", output_dir, tmp_path / layouts.OSCD_IMAGES, evaluated,
        "--do_train", "false", "--max_eval_samples", "2",
    )  # fmt: skip
    assert math.isfinite(metrics["eval_f1"]) and (evaluated / "eval_results.json").is_file()
    assert not (evaluated / "model.safetensors").exists()


def test_recipe_defaults_and_overrides(tmp_path):
    common = ["--model_name_or_path", "m", "--data_dir", "d", "--output_dir", str(tmp_path), "--use_cpu", "true"]
    script = load_script("run_classification")

    def arguments(*options):
        return parse_arguments(
            [*common, *options], script.ClassificationDataArguments, script.RECIPE, script.DATASET_RECIPES
        )

    _, data_args, training_args = arguments()
    # base lr 2e-4 x (16 x 8 on one device) / 256
    assert training_args.learning_rate == pytest.approx(1e-4)
    assert (data_args.dataset, data_args.eval_split, training_args.label_smoothing_factor) == ("eurosat", "val", 0.1)
    assert (training_args.num_train_epochs, training_args.lr_scheduler_type.value) == (150, "cosine")
    _, data_args, training_args = arguments("--dataset", "bigearthnet", "--learning_rate", "3e-4")
    assert (data_args.eval_split, training_args.label_smoothing_factor) == ("validation", 0.0)
    assert training_args.learning_rate == 3e-4


def test_recipe_trainer_decays(tmp_path):
    """Layer-wise decay scales each group's rate; the rate of epoch e is then multiplied by epoch_lr_decay^e."""
    torch.manual_seed(0)
    config = SpectralGPTConfig(
        image_size=8, patch_size=4, num_bands=3, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=8, num_labels=2,
    )  # fmt: skip
    data = Dataset.from_dict({"pixel_values": np.zeros((4, 3, 8, 8), np.float32), "labels": [0, 1, 0, 1]})
    args = RecipeTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, num_train_epochs=3, learning_rate=0.1,
        layer_decay=0.5, lr_scheduler_type="constant", epoch_lr_decay=0.5, logging_steps=1, use_cpu=True,
        report_to=[], save_strategy="no",
    )  # fmt: skip
    model = SpectralGPTForImageClassification(config)
    trainer = RecipeTrainer(model=model, args=args, train_dataset=data.with_format("torch"))
    trainer.train()
    # groups: tokenizer and position tables, the block, the rest (final norm and head)
    assert sorted({group["initial_lr"] for group in trainer.optimizer.param_groups}) == [0.025, 0.05, 0.1]
    # the logged rate is the first group's: 0.1 x 0.5^2, two steps per epoch
    rates = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    assert rates == pytest.approx([0.025, 0.025, 0.0125, 0.0125, 0.00625, 0.00625])
    with pytest.raises(ValueError, match="lr_scheduler_type must be 'constant'"):
        RecipeTrainingArguments(output_dir=str(tmp_path), epoch_lr_decay=0.95, lr_scheduler_type="cosine")


def test_recipe_trainer_mixes_training_batches_only(tmp_path):
    """With mixup / cutmix the model trains on class probabilities (smoothing folded in), Trainer counts one item per
    image, and evaluation sees the class ids with the plain cross-entropy."""
    torch.manual_seed(0)
    config = SpectralGPTConfig(
        image_size=8, patch_size=4, num_bands=3, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=8, num_labels=3, problem_type="single_label_classification",
    )  # fmt: skip
    data = Dataset.from_dict({"pixel_values": np.random.rand(4, 3, 8, 8).astype(np.float32), "labels": [0, 1, 2, 1]})
    args = RecipeTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, learning_rate=0.01,
        label_smoothing_factor=0.1, mixup_alpha=0.8, cutmix_alpha=1.0, use_cpu=True, report_to=[], save_strategy="no",
    )  # fmt: skip
    model = SpectralGPTForImageClassification(config)
    seen = []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs), with_kwargs=True)
    trainer = RecipeTrainer(model=model, args=args, train_dataset=data.with_format("torch"))
    assert trainer.label_smoother is None
    trainer.train()
    trained = seen[:]
    assert len(trained) == 2
    for call in trained:
        assert call["labels"].shape == (4, 3) and call["labels"].min() >= 0.1 / 3 - 1e-6
        torch.testing.assert_close(call["labels"].sum(-1), torch.ones(4))
        assert int(call["num_items_in_batch"]) == 4
    metrics = trainer.evaluate(data.with_format("torch"))
    assert torch.equal(seen[-1]["labels"], torch.tensor([0, 1, 2, 1]))
    with torch.no_grad():
        logits = model(torch.from_numpy(np.stack(data["pixel_values"]))).logits
    assert metrics["eval_loss"] == pytest.approx(float(F.cross_entropy(logits, torch.tensor([0, 1, 2, 1]))), rel=1e-5)

    config.problem_type = "multi_label_classification"
    with pytest.raises(ValueError, match="single-label classification"):
        RecipeTrainer(model=SpectralGPTForImageClassification(config), args=args, train_dataset=data)


def recipe_arguments(tmp_path, *options):
    script = load_script("run_classification")
    common = ["--model_name_or_path", "m", "--data_dir", "d", "--output_dir", str(tmp_path), "--use_cpu", "true"]
    data_arguments = script.ClassificationDataArguments
    return parse_arguments([*common, *options], data_arguments, script.RECIPE, script.DATASET_RECIPES)


def test_training_and_evaluation_are_opt_in(tmp_path):
    training_args = recipe_arguments(tmp_path)[2]
    assert (training_args.do_train, training_args.do_eval, training_args.eval_strategy.value) == (False, False, "no")
    training_args = recipe_arguments(tmp_path, "--do_train", "--do-eval")[2]
    # with --do_eval, the original's evaluation after every epoch
    assert (training_args.do_train, training_args.do_eval, training_args.eval_strategy.value) == (True, True, "epoch")
    training_args = recipe_arguments(tmp_path, "--do_train", "--do_eval", "--eval_strategy", "steps")[2]
    assert training_args.eval_strategy.value == "steps"


def test_help_lists_the_script_options_before_the_training_arguments(capsys):
    with pytest.raises(SystemExit):
        load_script("run_classification").main(["--help"])
    text = capsys.readouterr().out.split("\noptions:")[1]  # after the usage line, which lists every option
    order = [
        "\nmodel:", "--model_name_or_path", "\ndata:", "--dataset ", "\ntraining: the recipe's options",
        "--overwrite_output_dir", "--layer_decay", "--mixup_alpha", "--output_dir", "--per_device_train_batch_size",
    ]  # fmt: skip
    positions = [text.index(item) for item in order]
    assert positions == sorted(positions)


def test_rerunning_into_an_output_dir_resumes_or_refuses(tmp_path):
    from spectralgpt_hf.training.recipes import resume_or_refuse_output_dir

    output_dir = tmp_path / "run"
    output_dir.mkdir()
    training_args = recipe_arguments(output_dir, "--do_train")[2]
    resume_or_refuse_output_dir(training_args)  # an empty folder: a fresh run
    assert training_args.resume_from_checkpoint is None
    (output_dir / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="not empty and holds no checkpoint.*--overwrite_output_dir"):
        resume_or_refuse_output_dir(training_args)
    (output_dir / "checkpoint-2").mkdir()
    (output_dir / "checkpoint-10").mkdir()
    resume_or_refuse_output_dir(training_args)
    assert training_args.resume_from_checkpoint == str(output_dir / "checkpoint-10")
    training_args = recipe_arguments(output_dir, "--do_train", "--overwrite_output_dir")[2]
    resume_or_refuse_output_dir(training_args)
    assert training_args.resume_from_checkpoint is None
    # evaluation alone writes its results beside a trained model
    resume_or_refuse_output_dir(recipe_arguments(output_dir, "--do_eval")[2])


def test_a_second_run_into_the_same_folder_resumes_from_its_checkpoint(pretrained, data_dir, tmp_path, caplog):
    layouts.write_eurosat(data_dir, tmp_path)
    (tmp_path / "eurosat-train.txt").write_text("AnnualCrop_1.jpg\nPasture_300.jpg\nSeaLake_3000.jpg\n")
    (tmp_path / "eurosat-val.txt").write_text("Pasture_300.jpg\nSeaLake_3000.jpg\n")
    output_dir = tmp_path / "out"
    options = ["--dataset", "eurosat", "--save_strategy", "steps", "--save_steps", "2"]
    run_script("run_classification", pretrained, tmp_path, output_dir, *options)
    assert (output_dir / "checkpoint-2").is_dir()
    # the same command with more steps goes on from step 2
    with caplog.at_level("WARNING", logger="spectralgpt_hf.training.recipes"):
        run_script("run_classification", pretrained, tmp_path, output_dir, *options, "--max_steps", "3")
    assert f"Resuming from {output_dir / 'checkpoint-2'}" in caplog.text
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and [entry["step"] for entry in state["log_history"]][-1] == 3
    assert json.loads((output_dir / "train_results.json").read_text())["train_loss"] > 0


def write_described_tif(path, array):
    import rasterio

    from spectralgpt_hf import SENTINEL2_BANDS

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=12, dtype="uint16") as dataset:
        dataset.write(array)
        for index, band in enumerate(SENTINEL2_BANDS, start=1):
            dataset.set_band_description(index, band)


def random_image(seed):
    return np.random.default_rng(seed).integers(0, 10000, (12, 32, 32)).astype(np.uint16)


def test_classification_on_your_own_class_folders(pretrained, tmp_path):
    for split in ("train", "test"):
        for index, name in enumerate(["fields", "lake", "town"]):
            write_described_tif(tmp_path / "data" / split / name / f"{index}.tif", random_image(index))
    output_dir = tmp_path / "out"
    run_script("run_classification", pretrained, tmp_path / "data", output_dir, "--dataset", "folder")
    model, image_processor = check_output(output_dir, AutoModelForImageClassification, ["accuracy"])
    assert model.config.id2label == {0: "fields", 1: "lake", 2: "town"}
    assert (image_processor.normalization, image_processor.crop_size["height"]) == ("min_max", 32)
    training_args = torch.load(output_dir / "training_args.bin", weights_only=False)
    assert (training_args.mixup_alpha, training_args.label_smoothing_factor) == (0, 0)


def textured_image(kind, seed):
    """Separable under the recipe's per-band min-max, crops and flips: noise, or a vertical ramp plus faint noise."""
    rng = np.random.default_rng(seed)
    if kind == "noisy":
        return rng.integers(0, 10000, (12, 32, 32)).astype(np.uint16)
    ramp = np.linspace(0, 10000, 32)[None, :, None] * np.ones((12, 1, 32))
    return (ramp + rng.integers(0, 300, (12, 32, 32))).astype(np.uint16)


def test_classification_recipe_learns_separable_classes(pretrained, tmp_path):
    for split, count, first_seed in (("train", 4, 0), ("test", 2, 100)):
        for kind in ("noisy", "smooth"):
            for index in range(count):
                path = tmp_path / "data" / split / kind / f"{index}.tif"
                write_described_tif(path, textured_image(kind, first_seed + index))
    metrics = run_script(
        "run_classification", pretrained, tmp_path / "data", tmp_path / "out", "--dataset", "folder",
        "--max_steps", "20", "--per_device_train_batch_size", "4", "--learning_rate", "3e-3",
    )  # fmt: skip
    # ln 2 = 0.69 before training; 0.21 after these 20 steps.
    assert metrics["eval_accuracy"] == 1.0 and metrics["eval_loss"] < 0.4, metrics


def test_classification_on_a_datasets_dataset(pretrained, tmp_path):
    from datasets import Array3D, ClassLabel, DatasetDict, Features

    features = Features({"img": Array3D((12, 32, 32), "float32"), "class": ClassLabel(names=["dry", "wet"])})
    images = np.stack([random_image(seed) for seed in range(4)]).astype(np.float32)
    split = Dataset.from_dict({"img": images, "class": [0, 1, 0, 1]}, features=features)
    DatasetDict({"train": split, "test": split.select(range(2))}).save_to_disk(tmp_path / "saved")
    output_dir = tmp_path / "out"
    paths = dict(model_name_or_path=pretrained, dataset_name=tmp_path / "saved", output_dir=output_dir)
    metrics = load_script("run_classification").main(
        [*command_line({**paths, **QUICK}), "--image_column", "img", "--label_column", "class"]
    )
    assert math.isfinite(metrics["eval_accuracy"])
    model, _ = check_output(output_dir, AutoModelForImageClassification, ["accuracy"])
    assert model.config.id2label == {0: "dry", 1: "wet"}
    with pytest.raises(ValueError, match="--dataset hub reads the dataset of --dataset_name"):
        recipe_arguments(tmp_path, "--dataset", "hub")


def test_segmentation_on_your_own_image_mask_pairs(pretrained, tmp_path):
    import rasterio

    for split in ("train", "test"):
        for index in range(2):
            write_described_tif(tmp_path / "data" / split / "images" / f"{index}.tif", random_image(index))
            mask_path = tmp_path / "data" / split / "masks" / f"{index}.tif"
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(mask_path, "w", driver="GTiff", width=32, height=32, count=1, dtype="uint8") as mask:
                mask.write((np.arange(32 * 32).reshape(1, 32, 32) + index) % 3)
    (tmp_path / "data" / "classes.txt").write_text("other\ncrop\nwater\n")
    output_dir = tmp_path / "out"
    run_script("run_segmentation", pretrained, tmp_path / "data", output_dir, "--dataset", "folder")
    model, image_processor = check_output(output_dir, AutoModelForSemanticSegmentation, ["mean_iou"])
    assert model.config.id2label == {0: "other", 1: "crop", 2: "water"}
    assert (image_processor.normalization, image_processor.band_mean_channels) == ("min_max", 0)


def readme_commands():
    """The `python examples/<script>.py ...` commands of examples/README.md, as argument lists."""
    import re
    import shlex

    text = (EXAMPLES / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            if words[:1] == ["python"] and words[1].startswith("examples/run_"):
                commands.append((Path(words[1]).stem, words[2:]))
    return commands


def test_examples_readme_has_a_command_per_task_that_parses(tmp_path):
    commands = readme_commands()
    tasks = {(script, dict(zip(options[::2], options[1::2])).get("--dataset")) for script, options in commands}
    assert {
        ("run_classification", "eurosat"), ("run_classification", "bigearthnet"), ("run_segmentation", None),
        ("run_change_detection", None), ("run_classification", "folder"), ("run_segmentation", "folder"),
    } <= tasks  # fmt: skip
    for script_name, options in commands:
        script = load_script(script_name)
        # the script's own data arguments: ClassificationDataArguments, ...
        data_arguments = next(
            value for name, value in vars(script).items() if name.endswith("DataArguments") and name != "DataArguments"
        )
        options = [str(tmp_path / "out") if previous == "--output_dir" else option
                   for previous, option in zip(["", *options], options)]  # fmt: skip
        _, _, training_args = parse_arguments(
            [*options, "--use_cpu", "true"], data_arguments, script.RECIPE, getattr(script, "DATASET_RECIPES", None)
        )
        assert training_args.do_train or training_args.do_eval, (script_name, options)


def test_examples_requirements_cover_the_extras_they_use():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((EXAMPLES.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    lines = (EXAMPLES / "requirements.txt").read_text().splitlines()
    requirements = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert requirements == set(extras["train"]) | set(extras["geo"])
