"""SpectralGPTImageProcessor: each normalisation against plain numpy, resize/crop, input layouts, save/load, errors."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers.models.auto.image_processing_auto import AutoImageProcessor

from spectralgpt_hf import SpectralGPTConfig
from spectralgpt_hf.image_processing_spectralgpt import (
    BIGEARTHNET_MEAN,
    BIGEARTHNET_STD,
    EUROSAT_MEAN,
    EUROSAT_STD,
    SEGMUNICH_BANDS,
    SpectralGPTImageProcessor,
)
from spectralgpt_hf.geo import read_bands


@pytest.fixture
def images():
    """Two 12-band uint16 images with Sentinel-2-like digital numbers."""
    return np.random.default_rng(0).integers(0, 6000, size=(2, 12, 20, 24)).astype(np.uint16)


def pixel_values(processor, images, **kwargs):
    return processor(images, return_tensors="np", **kwargs)["pixel_values"]


def test_min_max_matches_numpy(images):
    epsilon = 1e-10
    x = images.astype(np.float64)
    low, high = x.min(axis=(2, 3), keepdims=True), x.max(axis=(2, 3), keepdims=True)
    expected = (x - low) / (high - low + epsilon)

    result = pixel_values(SpectralGPTImageProcessor.for_pretraining(), images)

    assert result.dtype == np.float32 and result.shape == (2, 12, 20, 24)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)


def test_min_max_on_a_real_eurosat_file(data_dir):
    path = data_dir / "eurosat_ms" / "Pasture" / "Pasture_300.tif"
    bands = read_bands(path, file_band_order="eurosat_ms")

    result = pixel_values(SpectralGPTImageProcessor.for_pretraining(), bands.data)[0]

    x = bands.data.astype(np.float64)
    low, high = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(result, (x - low) / (high - low + 1e-10), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(result.max(axis=(1, 2)), 1, rtol=1e-6)


def test_mean_std_matches_numpy(images):
    mean, std = np.array(EUROSAT_MEAN)[:, None, None], np.array(EUROSAT_STD)[:, None, None]

    result = pixel_values(SpectralGPTImageProcessor.for_eurosat(do_resize=False, do_center_crop=False), images)

    np.testing.assert_allclose(result, (images - mean) / std, rtol=1e-6, atol=1e-6)


def test_sentinel_normalize_matches_the_original_formula(images):
    mean, std = np.array(BIGEARTHNET_MEAN)[:, None, None], np.array(BIGEARTHNET_STD)[:, None, None]
    low, high = mean - 2 * std, mean + 2 * std
    expected = np.clip((images - low) / (high - low) * 255.0, 0, 255).astype(np.uint8) / 255.0

    processor = SpectralGPTImageProcessor.for_bigearthnet(do_resize=False, do_center_crop=False)
    result = pixel_values(processor, images)

    np.testing.assert_array_equal(result, expected.astype(np.float32))
    assert len(np.unique(result)) > 200  # many distinct levels, so the comparison is not trivial


def test_statistics_follow_the_spec():
    # Spec section 10.2: the fMoW-Sentinel 13-band statistics; BigEarthNet uses them without index 10 (B10).
    fmow_mean = [1370.19151926, 1184.3824625, 1120.77120066, 1136.26026392, 1263.73947144, 1645.40315151,
                 1846.87040806, 1762.59530783, 1972.62420416, 582.72633433, 14.77112979, 1732.16362238,
                 1247.91870117]  # fmt: skip
    fmow_std = [633.15169573, 650.2842772, 712.12507725, 965.23119807, 948.9819932, 1108.06650639, 1258.36394548,
                1233.1492281, 1364.38688993, 472.37967789, 14.3114637, 1310.36996126, 1087.6020813]  # fmt: skip
    # Spec section 10.2: the EuroSAT 13-band statistics, whose index 10 is a placeholder for the dropped B10.
    eurosat_mean = [752.40087073, 884.29673756, 1144.16202635, 1297.47289228, 1624.90992062, 2194.6423161,
                    2422.21248945, 2517.76053101, 2581.64687018, 2645.51888987, 582.72633433, 2368.51236873,
                    1805.06846033]  # fmt: skip
    eurosat_std = [1108.02887453, 1155.15170768, 1183.6292542, 1368.11351514, 1370.265037, 1355.55390699,
                   1416.51487101, 1474.78900051, 1439.3086061, 1582.28010962, 472.37967789, 1455.52084939,
                   1343.48379601]  # fmt: skip
    without_index_10 = [index for index in range(13) if index != 10]

    assert list(BIGEARTHNET_MEAN) == [fmow_mean[i] for i in without_index_10]
    assert list(BIGEARTHNET_STD) == [fmow_std[i] for i in without_index_10]
    assert list(EUROSAT_MEAN) == [eurosat_mean[i] for i in without_index_10]
    assert list(EUROSAT_STD) == [eurosat_std[i] for i in without_index_10]


def test_rescale_without_normalization(images):
    processor = SpectralGPTImageProcessor(normalization=None, do_rescale=True, rescale_factor=1e-4)
    np.testing.assert_allclose(pixel_values(processor, images), images * 1e-4, rtol=1e-6)


def test_nan_pixels_are_ignored_by_min_max_and_become_zero(images):
    x = images.astype(np.float32)
    x[0, 3, 5, 7] = np.nan
    x[1, 4] = np.nan
    x[0, 3, 0, 0] = -1e6  # an extreme valid value must still set the minimum

    result = pixel_values(SpectralGPTImageProcessor.for_pretraining(), x)

    assert np.isfinite(result).all()
    assert result[0, 3, 5, 7] == 0 and (result[1, 4] == 0).all()
    assert result[0, 3, 0, 0] == 0 and result[0, 3].max() == pytest.approx(1)
    clean = pixel_values(SpectralGPTImageProcessor.for_pretraining(), images.astype(np.float32))
    np.testing.assert_array_equal(result[1, 5:], clean[1, 5:])


def test_resize_is_torch_bicubic_without_antialias(images):
    processor = SpectralGPTImageProcessor(normalization=None, do_resize=True, size={"height": 50, "width": 30})
    expected = F.interpolate(
        torch.from_numpy(images.astype(np.float64)), size=(50, 30), mode="bicubic", align_corners=False
    )

    result = pixel_values(processor, images)

    assert result.shape == (2, 12, 50, 30)
    np.testing.assert_allclose(result, expected.numpy(), rtol=1e-6)
    constant = np.full((12, 10, 10), 7.0)
    np.testing.assert_allclose(pixel_values(processor, constant), 7.0)
    antialiased = pixel_values(processor, images, antialias=True)
    assert np.abs(antialiased - result).max() > 1  # the antialias kernel differs even when upsampling


@pytest.mark.parametrize(
    ("height", "width", "crop", "rows", "columns"),
    [(10, 10, (4, 6), slice(3, 7), slice(2, 8)), (11, 9, (4, 4), slice(4, 8), slice(2, 6)),
     (7, 7, (7, 7), slice(0, 7), slice(0, 7))],
)  # fmt: skip
def test_center_crop_picks_the_centre(height, width, crop, rows, columns):
    # Offsets are round((size - crop) / 2) with Python rounding, as in torchvision: 3.5 gives 4 but 2.5 gives 2.
    image = np.arange(12 * height * width, dtype=np.float64).reshape(12, height, width)
    processor = SpectralGPTImageProcessor(
        normalization=None, do_center_crop=True, crop_size={"height": crop[0], "width": crop[1]}
    )
    np.testing.assert_array_equal(pixel_values(processor, image)[0], image[:, rows, columns])


def test_eurosat_preset_is_normalize_resize_146_then_crop_128(images):
    x = images[0]
    normalized = (x - np.array(EUROSAT_MEAN)[:, None, None]) / np.array(EUROSAT_STD)[:, None, None]
    resized = F.interpolate(torch.from_numpy(normalized)[None], size=(146, 146), mode="bicubic", align_corners=False)

    result = pixel_values(SpectralGPTImageProcessor.for_eurosat(), x)

    assert result.shape == (1, 12, 128, 128)
    np.testing.assert_allclose(result, resized[:, :, 9:137, 9:137].numpy(), rtol=1e-5, atol=1e-6)


def test_layouts_dtypes_and_batching_give_the_same_result(images):
    processor = SpectralGPTImageProcessor.for_bigearthnet()
    reference = pixel_values(processor, images)

    channels_last = pixel_values(processor, images.transpose(0, 2, 3, 1), input_data_format="channels_last")
    as_float = pixel_values(processor, images.astype(np.float32))
    as_tensor = processor(torch.from_numpy(images.astype(np.int32)))["pixel_values"]
    as_list = pixel_values(processor, [images[0], images[1]])
    single = pixel_values(processor, images[1])

    assert reference.shape == (2, 12, 128, 128)
    for result in (channels_last, as_float, as_tensor.numpy(), as_list):
        np.testing.assert_array_equal(result, reference)
    np.testing.assert_array_equal(single[0], reference[1])
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.dtype == torch.float32


def test_images_of_different_sizes_are_batched_after_resizing(images):
    small = images[0, :, :10, :12]
    processor = SpectralGPTImageProcessor(do_resize=True, size=16)
    result = pixel_values(processor, [images[0], small])
    np.testing.assert_array_equal(result[1], pixel_values(processor, small)[0])
    with pytest.raises(ValueError, match="different sizes"):
        SpectralGPTImageProcessor()([images[0], small])


@pytest.mark.parametrize(
    "processor",
    [SpectralGPTImageProcessor.for_pretraining(), SpectralGPTImageProcessor.for_bigearthnet(),
     SpectralGPTImageProcessor.for_eurosat(), SpectralGPTImageProcessor.for_segmunich(),
     SpectralGPTImageProcessor.for_oscd(), SpectralGPTImageProcessor(normalization=None, num_bands=12,
     band_names=None)],
)  # fmt: skip
def test_save_and_load_round_trip(processor, images, tmp_path):
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    loaded = SpectralGPTImageProcessor.from_pretrained(tmp_path)

    assert saved["image_processor_type"] == "SpectralGPTImageProcessor"
    assert loaded.to_dict() == processor.to_dict()
    bands = images[:, : 12 - processor.band_mean_channels]  # SegMunich's processor appends 2 channels to 10 bands
    np.testing.assert_array_equal(pixel_values(loaded, bands), pixel_values(processor, bands))
    assert pixel_values(loaded, bands).shape[1] == 12


def test_registration_with_auto_image_processor(tmp_path):
    """Importing spectralgpt_hf registers the processor for SpectralGPT configs, without Pillow."""
    SpectralGPTConfig().save_pretrained(tmp_path)
    SpectralGPTImageProcessor.for_eurosat().save_pretrained(tmp_path)

    loaded = AutoImageProcessor.from_pretrained(tmp_path)

    assert isinstance(loaded, SpectralGPTImageProcessor) and loaded.normalization == "mean_std"


@pytest.mark.parametrize(
    ("bad_input", "kwargs", "error", "message"),
    [
        (np.zeros((13, 8, 8)), {}, ValueError, "Expected 12 bands in order B01, B02, B03, B04, B05, B06, B07, B08, "
         "B8A, B09, B11, B12, got 13 channels"),
        (np.zeros((8, 8, 12)), {}, ValueError, "got 8 channels .* pass input_data_format='channels_last'"),
        (np.zeros((12, 8, 8), dtype=bool), {}, TypeError, "integer or float dtype, got bool"),
        (np.zeros((12, 8, 8), dtype=np.complex64), {}, TypeError, "integer or float dtype, got complex64"),
        (np.zeros((12, 8, 8), dtype=object), {}, TypeError, "integer or float dtype, got object"),
        (torch.zeros((12, 8, 8), dtype=torch.bool), {}, TypeError, "integer or float dtype, got torch.bool"),
        (np.zeros((8, 8)), {}, ValueError, r"Expected one image \(C, H, W\) .* got shape \(8, 8\)"),
        (np.zeros((1, 1, 12, 8, 8)), {}, ValueError, r"got shape \(1, 1, 12, 8, 8\)"),
        ([np.zeros((1, 12, 8, 8))], {}, ValueError, "Each image in a list must have 3 dimensions"),
        ([], {}, ValueError, "empty list"),
        ("scene.tif", {}, TypeError, "numpy arrays or torch tensors, got str"),
        (np.zeros((12, 8, 8)), {"input_data_format": "channels_middle"}, ValueError, "input_data_format must be"),
        (np.zeros((12, 8, 8)), {"do_center_crop": True, "crop_size": 16}, ValueError, "larger than the image"),
        (np.zeros((12, 8, 8)), {"do_normalize": True}, ValueError, "does not support do_normalize"),
        (np.zeros((12, 8, 8)), {"normalization": "z_score"}, ValueError, "normalization must be one of"),
        (np.zeros((8, 8, 13)), {"input_data_format": "channels_last"}, ValueError,
         r"got 13 channels in an image read as \(H, W, C\) channels_last with shape \(13, 8, 8\)"),
        (np.zeros((12, 8, 8)), {"min_max_epsilon": -1.0}, ValueError,
         r"min_max normalisation needs min_max_epsilon >= 0, got -1\.0"),
        # without band names, the statistics tell the band count
        (np.zeros((4, 8, 8)), {"normalization": "mean_std", "image_mean": [1.0, 2.0, 3.0], "image_std": [1.0, 1.0, 1.0],
                               "band_names": None}, ValueError, r"^Expected 3 bands, got 4 channels"),
        (np.zeros((2, 8, 8)), {"normalization": "mean_std", "image_mean": [1.0, 2.0, 3.0], "image_std": [1.0, 1.0, 1.0],
                               "band_names": ["B02", "B03"]}, ValueError,
         r"makes 2 channels \(\['B02', 'B03'\]\); give one value per channel"),
        (np.zeros((12, 8, 8)), {"do_resize": True, "size": {"height": 0, "width": 8}}, ValueError,
         r"size must be \{'height': int, 'width': int\} .* got \{'height': 0, 'width': 8\}\."),
        (np.zeros((12, 8, 8)), {"do_center_crop": True, "crop_size": None}, ValueError, r"crop_size must be .* got None\."),
    ],
)  # fmt: skip
def test_bad_input_errors(bad_input, kwargs, error, message):
    with pytest.raises(error, match=message):
        SpectralGPTImageProcessor()(bad_input, **kwargs)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"normalisation": "min_max"}, TypeError, r"unknown options \['normalisation'\]"),
        ({"normalization": "mean_std"}, ValueError, "needs image_mean and image_std"),
        ({"normalization": "mean_std", "image_mean": [1.0] * 3, "image_std": [1.0] * 3}, ValueError,
         "3 values but the processor makes 12 channels"),
        ({"normalization": "mean_std", "image_mean": [1.0] * 10, "image_std": [1.0] * 10,
          "band_names": list(SEGMUNICH_BANDS), "band_mean_channels": 2}, ValueError,
         "10 values but the processor makes 12 channels .* and 2 band-mean channels"),
        ({"band_mean_channels": -1}, ValueError, "band_mean_channels must be a whole number >= 0"),
        ({"normalization": "sentinel_normalize", "image_mean": [0.0] * 12, "image_std": [0.0] * 12}, ValueError,
         "must be positive"),
        ({"band_names": ["B02", "B02"]}, ValueError, "distinct band names"),
        ({"band_names": ["B02", "B03"], "num_bands": 3}, ValueError, "lists 2 bands but num_bands is 3"),
        ({"do_rescale": True}, ValueError, "needs rescale_factor"),
        ({"do_resize": True}, ValueError, "size must be"),
        ({"resample": 3}, ValueError, "does not support resample"),
    ],
)  # fmt: skip
def test_invalid_options_are_rejected(options, error, message):
    with pytest.raises(error, match=message):
        SpectralGPTImageProcessor(**options)


def min_max(bands, epsilon):
    low, high = bands.min(axis=(-2, -1), keepdims=True), bands.max(axis=(-2, -1), keepdims=True)
    return (bands - low) / (high - low + epsilon)


def test_segmunich_preset_appends_two_band_means_then_min_max_with_eps_1e9():
    processor = SpectralGPTImageProcessor.for_segmunich()
    bands = np.random.default_rng(1).integers(0, 6000, size=(10, 16, 16)).astype(np.float64)
    channels = np.concatenate([bands, np.repeat(bands.mean(axis=0, keepdims=True), 2, axis=0)])
    assert (processor.min_max_epsilon, processor.band_mean_channels) == (1e-9, 2)
    assert processor.band_names == list(SEGMUNICH_BANDS)
    np.testing.assert_allclose(pixel_values(processor, bands)[0], min_max(channels, 1e-9), rtol=1e-5, atol=1e-6)


def test_oscd_preset_is_min_max_with_eps_1e12_so_a_constant_band_gives_zero(images):
    processor = SpectralGPTImageProcessor.for_oscd()
    image = images[0].astype(np.float64)
    image[3] = 500.0
    result = pixel_values(processor, image)[0]
    assert processor.min_max_epsilon == 1e-12
    np.testing.assert_allclose(result, min_max(image, 1e-12), rtol=1e-5, atol=1e-6)
    assert not result[3].any()


def test_shape_errors_name_the_layout_they_read():
    with pytest.raises(ValueError, match=r"3 dimensions \(\(H, W, C\) channels_last\)"):
        SpectralGPTImageProcessor()([np.zeros((1, 8, 8, 12))], input_data_format="channels_last")
    with pytest.raises(ValueError, match=r"3 dimensions \(\(C, H, W\) channels_first\)"):
        SpectralGPTImageProcessor()([np.zeros((1, 12, 8, 8))])


def test_device_places_the_pixel_values():
    """`device` moves the images before processing (the meta device stands in for an accelerator here)."""
    pixel_values = SpectralGPTImageProcessor.for_pretraining()(np.zeros((12, 8, 8)), return_tensors="pt", device="meta")
    assert pixel_values["pixel_values"].device.type == "meta"
    assert pixel_values["pixel_values"].shape == (1, 12, 8, 8)
