"""The demo (`spectralgpt-hf demo`): an end-to-end SpectralGPT run on a Sentinel-2 scene, with no network and no GPU.

1. A model: an original checkpoint converted (`--checkpoint SpectralGPT+.pth`), a converted or trained one loaded
   (`--model DIR_OR_HUB_ID`), or, when neither is at hand, a small SpectralGPT pretrained for a few minutes on
   crops of the scene itself with this package's pretraining loop.
2. Masked reconstruction: 90 % of the 3D tokens of a crop are removed and predicted back.
3. Whole-scene inference: per-patch embeddings of the whole scene, grouped into land-cover-like clusters, and,
   with `--segmentation-model`, a class map from a segmentation model.

Every raster is a GeoTIFF on the scene's grid; PNG previews (true colour, masked input, reconstruction, class map)
sit beside them. Run `spectralgpt-hf demo --output outputs/demo [--input SCENE]`; without `--input` it reads the
real SSL4EO-S12 scene embedded in the package (`spectralgpt_hf.samples`, 264 x 264 px at 10 m).
"""

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from ..geo import open_scene, write_geotiff
from ..image_processing_spectralgpt import SpectralGPTImageProcessor
from ..inference import embed_scene, predict_scene
from ..loading import load_image_processor, load_model
from ..modeling_spectralgpt import (
    SpectralGPTForPreTraining,
    SpectralGPTForSemanticSegmentation,
)
from ..utils.atomic import atomic_file
from ..samples import SSL4EO_LOCATION, sample_scene

TRUE_COLOUR = ("B04", "B03", "B02")
# A qualitative palette for class maps (RGB).
PALETTE = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
     [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207], [0, 0, 0], [255, 255, 255], [90, 90, 200]],
    dtype=np.uint8,
)  # fmt: skip


# the shared data folder of the project's tests and benchmarks (`$SPECTRALGPT_SHARED/data/<dataset>/...`)
SHARED_VARIABLE = "SPECTRALGPT_SHARED"


def default_scene() -> str:
    """The real Sentinel-2 scene embedded in the package (the first date of its SSL4EO-S12 location), or, in an
    installation without the package's data, the same scene under `$SPECTRALGPT_SHARED/data/`."""
    for scene in (embedded_scene(), shared_scene()):
        if scene is not None and any(scene.glob("*.tif")):
            return str(scene)
    shared = os.environ.get(SHARED_VARIABLE)
    where = f"={shared} has no data/{SSL4EO_LOCATION}/<date>/" if shared else " is not set"
    raise FileNotFoundError(
        f"No --input given and no sample scene found: the package's embedded one is missing and {SHARED_VARIABLE}"
        f"{where}. Pass --input with a GeoTIFF scene (a stacked file or a folder of per-band files), or set "
        f"{SHARED_VARIABLE} to a folder holding data/{SSL4EO_LOCATION}."
    )


def embedded_scene() -> Path | None:
    try:
        return sample_scene()
    except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
        return None


def shared_scene() -> Path | None:
    shared = os.environ.get(SHARED_VARIABLE)
    if not shared:
        return None
    dates = sorted(path for path in (Path(shared) / "data" / SSL4EO_LOCATION).glob("*") if path.is_dir())
    return dates[0] if dates else None


def write_png(path: Path, rgb: np.ndarray) -> None:
    """A (3, H, W) uint8 image as PNG, written atomically."""
    with warnings.catch_warnings(), atomic_file(path) as temporary:
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(temporary, "w", driver="PNG", height=rgb.shape[1], width=rgb.shape[2], count=3,
                           dtype="uint8") as png:  # fmt: skip
            png.write(rgb)


def stretch(bands: np.ndarray, low: np.ndarray | None = None, high: np.ndarray | None = None) -> np.ndarray:
    """(3, H, W) values to uint8 with a 2-98 % stretch per band (or the given limits); NaN becomes black."""
    if low is None:
        low, high = np.nanpercentile(bands, 2, axis=(1, 2)), np.nanpercentile(bands, 98, axis=(1, 2))
    scaled = (bands - low[:, None, None]) / np.maximum(high - low, 1e-12)[:, None, None]
    return (np.nan_to_num(np.clip(scaled, 0, 1)) * 255).astype(np.uint8)


def colour_classes(classes: np.ndarray, nodata: int = 255) -> np.ndarray:
    rgb = PALETTE[classes % len(PALETTE)].transpose(2, 0, 1).copy()
    rgb[:, classes == nodata] = 0
    return rgb


@dataclass(frozen=True)
class QuickFit:
    """The quick fit of a demo without weights: a small SpectralGPT pretrained on random crops of the scene.

    Sized to learn the scene's spectra and coarse layout in a few minutes on 2 CPU cores: a narrow encoder, a
    light decoder, a high learning rate, and crops drawn only from the rows `rows` of the scene (the rest can be
    held out to check the model on pixels it never saw).
    """

    steps: int = 1000
    image_size: int = 64
    crop_size: int = 96
    num_crops: int = 96
    batch_size: int = 16
    learning_rate: float = 3e-3
    mask_ratio: float = 0.9
    config_overrides: str = (
        "hidden_size=128,num_hidden_layers=4,num_attention_heads=4,intermediate_size=512,decoder_hidden_size=128,"
        "decoder_num_hidden_layers=2,decoder_num_attention_heads=4,decoder_intermediate_size=256"
    )
    rows: tuple[int, int] | None = None


def write_crops(scene_path: str, folder: Path, fit: QuickFit, seed: int) -> None:
    folder.mkdir()
    generator = np.random.default_rng(seed)
    with open_scene(scene_path) as scene:
        top, bottom = fit.rows or (0, scene.height)
        if bottom - top < fit.crop_size or scene.width < fit.crop_size:
            raise ValueError(
                f"The scene ({scene.height} x {scene.width} px, rows {top}-{bottom} used) is smaller than the "
                f"quick fit's {fit.crop_size} px crops; give a larger scene with --input, or a model with --model."
            )
        for index in range(fit.num_crops):
            row = int(generator.integers(top, bottom - fit.crop_size + 1))
            col = int(generator.integers(0, scene.width - fit.crop_size + 1))
            bands = scene.read(Window(col, row, fit.crop_size, fit.crop_size))
            write_geotiff(folder / f"crop_{index:03d}.tif", bands.data, bands.crs, bands.transform,
                          band_descriptions=list(bands.band_names))  # fmt: skip


def fit_on_scene(scene_path: str, workdir: Path, fit: QuickFit = QuickFit(), seed: int = 0) -> Path:
    """Pretrains the small SpectralGPT of `fit` on random crops of the scene; returns its folder."""
    from ..training.pretraining import PretrainingArguments, pretrain

    write_crops(scene_path, workdir / "crops", fit, seed)
    arguments = PretrainingArguments(
        output_dir=str(workdir / "pretraining"),
        rasters=[str(workdir / "crops")],
        image_size=fit.image_size,
        config_overrides=fit.config_overrides,
        mask_ratio=fit.mask_ratio,
        per_device_batch_size=fit.batch_size,
        max_steps=fit.steps,
        warmup_steps=max(1, fit.steps // 10),
        learning_rate=fit.learning_rate,
        save_steps=fit.steps,
        logging_steps=max(1, fit.steps // 5),
        report_to="none",
        dataloader_num_workers=0,
        seed=seed,
    )
    return Path(pretrain(arguments))


def masked_token_errors(model: SpectralGPTForPreTraining, pixel_values: torch.Tensor,
                        noise: torch.Tensor) -> dict[str, float]:  # fmt: skip
    """
    Mean squared error over the removed tokens (normalised units) of the model's prediction and of the baseline
    that predicts, for each band, its mean over the visible tokens of the same image (over all visible pixels when
    none of its tokens is visible).
    """
    model.eval()
    with torch.no_grad():
        outputs = model(pixel_values, noise=noise)
    target = model.patchify(pixel_values)
    removed = outputs.mask.bool()
    batch, groups = pixel_values.shape[0], model.config.num_bands // model.config.spectral_patch_size
    # (batch, groups, positions, bands of a group, pixels of a patch)
    tokens = target.reshape(batch, groups, -1, model.config.spectral_patch_size, model.config.patch_size**2)
    visible = (~removed).reshape(batch, groups, -1, 1, 1).float()
    count = visible.sum(dim=(2, 4), keepdim=True) * tokens.shape[-1]
    band_mean = (tokens * visible).sum(dim=(2, 4), keepdim=True) / count.clamp(min=1)
    overall = (tokens * visible).sum(dim=(1, 2, 3, 4), keepdim=True) / (count.sum(1, keepdim=True).sum(3, keepdim=True))
    band_mean = torch.where(count > 0, band_mean, overall)
    baseline = band_mean.expand_as(tokens).reshape_as(target)
    token_error = lambda prediction: ((prediction - target) ** 2).mean(dim=-1)[removed].mean().item()
    return {"model_mse": token_error(outputs.logits), "baseline_mse": token_error(baseline)}


def evaluate_on_scene(model: SpectralGPTForPreTraining, scene_path: str, seed: int,
                      rows: tuple[int, int] | None = None) -> dict[str, float]:  # fmt: skip
    """`masked_token_errors` over the non-overlapping model-sized crops of the scene (of its rows `rows`), each
    with its own fixed mask, normalised per crop as in pretraining."""
    size = model.config.image_size
    processor = SpectralGPTImageProcessor.for_pretraining(band_names=list(model.config.band_names))
    with open_scene(scene_path, model.config.band_names) as scene:
        top, bottom = rows or (0, scene.height)
        windows = [Window(col, row, size, size) for row in range(top, bottom - size + 1, size)
                   for col in range(0, scene.width - size + 1, size)]  # fmt: skip
        if not windows:
            raise ValueError(f"The scene has no {size} px crop in rows {top}-{bottom} to evaluate the model on.")
        crops = [scene.read(window).data for window in windows]
    pixel_values = processor(crops, return_tensors="pt")["pixel_values"]
    noise = torch.rand(len(crops), model.config.num_tokens, generator=torch.Generator().manual_seed(seed))
    return {**masked_token_errors(model, pixel_values, noise), "crops": len(crops)}


def demo_model(checkpoint: str | None, model: str | None, scene: str, workdir: Path, fit: QuickFit,
               seed: int) -> SpectralGPTForPreTraining:  # fmt: skip
    """The pretraining model to show: an original file, a saved model, or else a quick fit on the scene."""
    if checkpoint is not None or model is not None:
        return load_model(checkpoint or model, SpectralGPTForPreTraining, strict=True)
    print(f"No --checkpoint or --model: pretraining a small SpectralGPT on the scene for {fit.steps} steps.")
    return SpectralGPTForPreTraining.from_pretrained(fit_on_scene(scene, workdir, fit, seed))


def report_errors(model: SpectralGPTForPreTraining, scene: str, output: Path, seed: int) -> Path:
    """Writes metrics.json: the masked-token error of the model and of the visible band-mean baseline over the
    scene's crops; prints both."""
    errors = evaluate_on_scene(model, scene, seed)
    errors["mask_ratio"] = model.config.mask_ratio
    errors["beats_baseline"] = errors["model_mse"] < errors["baseline_mse"]
    print(
        f"Masked-token error over {errors['crops']} crops of the scene ({model.config.mask_ratio:.0%} of the tokens "
        f"removed, normalised units): model {errors['model_mse']:.4f}, baseline (each band's mean over the visible "
        f"tokens) {errors['baseline_mse']:.4f}."
    )
    path = output / "metrics.json"
    with atomic_file(path) as temporary:
        temporary.write_text(json.dumps(errors, indent=1) + "\n")
    return path


def reconstruct(model: SpectralGPTForPreTraining, scene_path: str, output: Path, seed: int) -> dict[str, Path]:
    """Masks 90 % of the tokens of the scene's central crop and predicts them back; writes GeoTIFFs and PNGs."""
    size = model.config.image_size
    with open_scene(scene_path, model.config.band_names) as scene:
        crop = scene.read(Window((scene.width - size) // 2, (scene.height - size) // 2, size, size))
    processor = SpectralGPTImageProcessor.for_pretraining(band_names=list(model.config.band_names))
    pixel_values = processor(crop.data, return_tensors="pt")["pixel_values"]
    noise = torch.rand(1, model.config.num_tokens, generator=torch.Generator().manual_seed(seed))
    model.eval()
    with torch.no_grad():
        outputs = model(pixel_values, noise=noise)
    image_shape = (size, size)
    predicted = model.unpatchify(outputs.logits, image_shape)[0].numpy()
    removed = model.unpatchify(outputs.mask[:, :, None].expand_as(outputs.logits), image_shape)[0].numpy() > 0.5
    original = pixel_values[0].numpy()
    pasted = np.where(removed, predicted, original)

    paths = {
        "crop_tif": output / "reconstruction_input.tif",
        "reconstruction_tif": output / "reconstruction.tif",
        "input_png": output / "reconstruction_input_true_colour.png",
        "masked_png": output / "reconstruction_masked_true_colour.png",
        "prediction_png": output / "reconstruction_predicted_true_colour.png",
        "pasted_png": output / "reconstruction_visible_plus_predicted_true_colour.png",
    }
    names = list(model.config.band_names)
    write_geotiff(paths["crop_tif"], original, crop.crs, crop.transform, band_descriptions=names)
    write_geotiff(paths["reconstruction_tif"], pasted, crop.crs, crop.transform, band_descriptions=names)
    rgb = [names.index(band) for band in TRUE_COLOUR]
    low, high = np.percentile(original[rgb], 2, axis=(1, 2)), np.percentile(original[rgb], 98, axis=(1, 2))
    write_png(paths["input_png"], stretch(original[rgb], low, high))
    write_png(paths["masked_png"], stretch(np.where(removed, np.nan, original)[rgb], low, high))
    write_png(paths["prediction_png"], stretch(predicted[rgb], low, high))
    write_png(paths["pasted_png"], stretch(pasted[rgb], low, high))
    masked_error = float(((predicted - original) ** 2)[removed].mean())
    print(f"Reconstruction: {removed.mean():.0%} of the crop removed; MSE on removed pixels {masked_error:.4f} "
          "(normalised units; metrics.json compares the model with a baseline over the whole scene).")  # fmt: skip
    return paths


def cluster(embeddings: np.ndarray, num_clusters: int, seed: int, iterations: int = 30) -> np.ndarray:
    """k-means (k-means++ start) of (C, H, W) embeddings; NaN pixels get 255."""
    valid = np.all(np.isfinite(embeddings), axis=0)
    points = torch.from_numpy(embeddings[:, valid].T.copy())
    points = torch.nn.functional.normalize(points, dim=1)
    generator = torch.Generator().manual_seed(seed)
    centres = points[torch.randint(len(points), (1,), generator=generator)]
    for _ in range(num_clusters - 1):
        distance = torch.cdist(points, centres).min(dim=1).values ** 2
        centres = torch.cat([centres, points[torch.multinomial(distance / distance.sum(), 1, generator=generator)]])
    for _ in range(iterations):
        assignment = torch.cdist(points, centres).argmin(dim=1)
        for index in range(num_clusters):
            members = points[assignment == index]
            if len(members):
                centres[index] = members.mean(dim=0)
    classes = np.full(valid.shape, 255, dtype=np.uint8)
    classes[valid] = torch.cdist(points, centres).argmin(dim=1).numpy().astype(np.uint8)
    return classes


def scene_inference(model, scene_path: str, output: Path, segmentation_model: str | None, num_clusters: int,
                    seed: int) -> dict[str, Path]:  # fmt: skip
    paths = {"embeddings_tif": output / "embeddings.tif", "clusters_tif": output / "clusters.tif",
             "clusters_png": output / "clusters.png", "scene_png": output / "scene_true_colour.png"}  # fmt: skip
    embed_scene(model.spectralgpt, scene_path, paths["embeddings_tif"], tile=128, overlap=32, batch_size=8)
    with rasterio.open(paths["embeddings_tif"]) as embeddings:
        classes = cluster(embeddings.read(), num_clusters, seed)
        write_geotiff(paths["clusters_tif"], classes, embeddings.crs, embeddings.transform, nodata=255,
                      band_descriptions=["cluster"])  # fmt: skip
    # one embedding pixel per patch: repeat it to the scene's 10 m pixels for the preview
    patch = model.config.patch_size
    write_png(paths["clusters_png"], colour_classes(classes.repeat(patch, axis=0).repeat(patch, axis=1)))
    with open_scene(scene_path, TRUE_COLOUR) as scene:
        write_png(paths["scene_png"], stretch(scene.read().data))
    if segmentation_model is not None:
        segmenter = load_model(segmentation_model, SpectralGPTForSemanticSegmentation)
        processor = load_image_processor(segmentation_model)  # SegMunich's reads 10 bands and appends their mean
        paths["classes_tif"] = predict_scene(
            segmenter, scene_path, output / "classes.tif", processor=processor, overlap=32
        )
        with rasterio.open(paths["classes_tif"]) as classes_file:
            paths["classes_png"] = output / "classes.png"
            write_png(paths["classes_png"], colour_classes(classes_file.read(1)))
    return paths


def run_demo(
    output_dir: str | os.PathLike,
    input: str | None = None,
    checkpoint: str | None = None,
    model: str | None = None,
    segmentation_model: str | None = None,
    fit: QuickFit = QuickFit(),
    num_clusters: int = 6,
    seed: int = 0,
) -> dict[str, Path]:
    """Runs the demo; returns the written files by role. `fit` sizes the quick fit, when no model is given."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    scene = input or default_scene()
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as workdir:
        pretraining_model = demo_model(checkpoint, model, scene, Path(workdir), fit, seed)
        pretraining_model.save_pretrained(output / "model")
    paths = reconstruct(pretraining_model, scene, output, seed)
    paths["metrics_json"] = report_errors(pretraining_model, scene, output, seed)
    paths.update(scene_inference(pretraining_model, scene, output, segmentation_model, num_clusters, seed))
    for role, path in paths.items():
        print(f"{role:>24}: {path}")
    return paths
