# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Image processor for SpectralGPT: multi-band (Sentinel-2) images in pure torch, without Pillow or torchvision."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_base import BatchFeature
from transformers.image_processing_utils import INIT_SERVICE_KWARGS, BaseImageProcessor
from transformers.image_utils import ChannelDimension, SizeDict
from transformers.processing_utils import ImagesKwargs, Unpack

from .configuration_spectralgpt import SENTINEL2_BANDS

# Layer order of the 10-band SegMunich (TUM_128) tifs according to a third-party loader (unverified; the original
# code does not say). The data loader reads the layers in file order whatever their names; the names let
# whole-scene inference read these bands from a Sentinel-2 scene.
SEGMUNICH_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12")

NORMALIZATIONS = ("min_max", "mean_std", "sentinel_normalize")

# BigEarthNet statistics of the original `BigEarthNetFinetuneDataset`, for the bands
# B01..B08, B8A, B09, B11, B12: the fMoW-Sentinel 13-band statistics without their B10 entry.
BIGEARTHNET_MEAN = (1370.19151926, 1184.3824625, 1120.77120066, 1136.26026392, 1263.73947144, 1645.40315151, 1846.87040806, 1762.59530783, 1972.62420416, 582.72633433, 1732.16362238, 1247.91870117)  # fmt: skip
BIGEARTHNET_STD = (633.15169573, 650.2842772, 712.12507725, 965.23119807, 948.9819932, 1108.06650639, 1258.36394548, 1233.1492281, 1364.38688993, 472.37967789, 1310.36996126, 1087.6020813)  # fmt: skip

# EuroSAT statistics of the original `EuroSat` dataset. That list has 13 values, but its
# index 10 is not B10: it is a placeholder (the fMoW B09 statistics 582.73 / 472.38) spliced into the 12-value
# list that is commented out in `BigEarthNetFinetuneDataset`, whose order is B01..B08, B8A, B09, B11, B12.
# Deleting index 10 recovers those 12 values, in SpectralGPT's band order.
EUROSAT_MEAN = (752.40087073, 884.29673756, 1144.16202635, 1297.47289228, 1624.90992062, 2194.6423161, 2422.21248945, 2517.76053101, 2581.64687018, 2645.51888987, 2368.51236873, 1805.06846033)  # fmt: skip
EUROSAT_STD = (1108.02887453, 1155.15170768, 1183.6292542, 1368.11351514, 1370.265037, 1355.55390699, 1416.51487101, 1474.78900051, 1439.3086061, 1582.28010962, 1455.52084939, 1343.48379601)  # fmt: skip

# The original evaluation transform: Resize(int(128 / (224 / 256)) = 146, bicubic), then CenterCrop(128).
EVALUATION_RESIZE_AND_CROP = {
    "do_resize": True,
    "size": {"height": 146, "width": 146},
    "do_center_crop": True,
    "crop_size": {"height": 128, "width": 128},
}

# Options of transformers' ImagesKwargs that this processor does not implement, with what to use instead.
# The options `_validate_preprocess_kwargs` checks, in the order it unpacks them.
_VALIDATED_OPTIONS = (
    "normalization", "image_mean", "image_std", "min_max_epsilon", "band_names", "num_bands", "band_mean_channels",
    "do_rescale", "rescale_factor", "do_resize", "size", "do_center_crop", "crop_size", "input_data_format",
    "data_format",
)  # fmt: skip

_UNSUPPORTED_OPTIONS = {
    "do_normalize": "choose the normalisation with normalization='min_max' | 'mean_std' | 'sentinel_normalize' "
    "| None",
    "resample": "resizing is always bicubic (torch.nn.functional.interpolate); leave resample out",
    "do_convert_rgb": "multispectral images have no RGB conversion; leave do_convert_rgb out",
    "do_pad": "padding is not implemented; resize or crop instead",
}


class SpectralGPTImageProcessorKwargs(ImagesKwargs, total=False):
    """
    normalization (`str`, *optional*):
        "min_max" (per image and band: (x - min) / (max - min + min_max_epsilon)), "mean_std" ((x - image_mean) /
        image_std per band), "sentinel_normalize" (BigEarthNet fine-tuning: clip((x - (mean - 2 std)) / (4 std) *
        255, 0, 255), truncated to an integer, then / 255) or None (no normalisation).
    min_max_epsilon (`float`, *optional*):
        Added to max - min in "min_max" normalisation.
    band_names (`list[str]`, *optional*):
        Names of the input bands, in input order; the band count of every image is checked against it.
    num_bands (`int`, *optional*):
        Number of input bands, checked when `band_names` is not given.
    band_mean_channels (`int`, *optional*):
        Channels appended to the input bands before every other step: this many copies of the per-pixel mean of
        the bands. The SegMunich model takes its 10 bands and their mean twice (2); default 0.
    antialias (`bool`, *optional*):
        Passed to `torch.nn.functional.interpolate`. False reproduces the original (torchvision 0.15) tensor resize.
    """

    normalization: str | None
    min_max_epsilon: float | None
    band_names: list[str] | None
    num_bands: int | None
    band_mean_channels: int | None
    antialias: bool | None


class SpectralGPTImageProcessor(BaseImageProcessor):
    r"""
    Prepares multi-band images (Sentinel-2 bands, channels first by default) for SpectralGPT models.

    Steps, in the order of the original training code (normalisation before resizing):
    0. `band_mean_channels`: append copies of the per-pixel band mean (SegMunich's synthetic channels).
    1. `do_rescale`: multiply by `rescale_factor` (e.g. 1e-4 for L2A reflectance x 10000).
    2. `normalization`: "min_max", "mean_std", "sentinel_normalize" or None (see
       `SpectralGPTImageProcessorKwargs`).
    3. Non-finite values (NaN marks nodata pixels and missing bands from `spectralgpt_hf.geo`) become 0, which
       is the band mean for "mean_std", the band minimum for "min_max" and mean - 2 std for "sentinel_normalize".
       "min_max" takes the minimum and maximum over the finite values only.
    4. `do_resize`: bicubic to `size` {"height", "width"} with `torch.nn.functional.interpolate(mode="bicubic",
       align_corners=False)`. That is torchvision's tensor resize without antialiasing, which the original code
       used (torchvision 0.15). Newer torchvision antialiases by default, which uses a different cubic kernel
       (a = -0.5 instead of -0.75) and so changes results when upsampling too; set `antialias=True` to match it.
    5. `do_center_crop`: crop `crop_size` from the centre (offsets rounded as torchvision does).

    Inputs are numpy arrays or torch tensors of any integer or float dtype: one image (C, H, W), a batch
    (B, C, H, W), or a list of images. For (H, W, C) input pass `input_data_format="channels_last"`; the layout
    is never guessed. The output `pixel_values` are float32 (B, C, H, W).

    The `for_*` constructors reproduce the preprocessing of each original training.
    """

    valid_kwargs = SpectralGPTImageProcessorKwargs
    model_input_names = ["pixel_values"]

    normalization = "min_max"
    min_max_epsilon = 1e-10
    image_mean = None
    image_std = None
    band_names = list(SENTINEL2_BANDS)
    num_bands = None
    band_mean_channels = 0
    do_rescale = False
    rescale_factor = None
    do_resize = False
    size = None
    do_center_crop = False
    crop_size = None
    antialias = False

    def __init__(self, **kwargs: Unpack[SpectralGPTImageProcessorKwargs]):
        # auto_map: written by save_pretrained into repositories that carry the code (spectralgpt_hf.hub.publishing)
        known = {*self.valid_kwargs.__annotations__, *INIT_SERVICE_KWARGS, "auto_map"}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(
                f"SpectralGPTImageProcessor got unknown options {sorted(unknown)}. Valid options: "
                f"{sorted(self.valid_kwargs.__annotations__)}."
            )
        super().__init__(**kwargs)
        self._set_attributes(**kwargs)
        # The base class reads None as "use the default"; here an explicit None (normalization=None,
        # band_names=None) is kept, so that it also survives save_pretrained / from_pretrained.
        for name, value in kwargs.items():
            if value is None:
                setattr(self, name, None)
        self._validate_preprocess_kwargs(**{name: getattr(self, name) for name in self._valid_kwargs_names})

    @classmethod
    def for_pretraining(cls, **overrides) -> SpectralGPTImageProcessor:
        """Pretraining (SpectralGPT, SpectralGPT+): per-image per-band min-max with eps 1e-10 (fMoW-Sentinel stage;
        the BigEarthNet stage used 1e-12; on integer data the difference is below float32 precision)."""
        return cls(**{"normalization": "min_max", "min_max_epsilon": 1e-10, **overrides})

    @classmethod
    def for_bigearthnet(cls, **overrides) -> SpectralGPTImageProcessor:
        """BigEarthNet fine-tuning: SentinelNormalize with the BigEarthNet statistics, then the evaluation
        Resize(146) + CenterCrop(128)."""
        settings = {"normalization": "sentinel_normalize", "image_mean": BIGEARTHNET_MEAN, "image_std": BIGEARTHNET_STD}
        return cls(**{**settings, **EVALUATION_RESIZE_AND_CROP, **overrides})

    @classmethod
    def for_eurosat(cls, **overrides) -> SpectralGPTImageProcessor:
        """EuroSAT fine-tuning: per-band mean/std on raw digital numbers, then Resize(146) + CenterCrop(128)."""
        settings = {"normalization": "mean_std", "image_mean": EUROSAT_MEAN, "image_std": EUROSAT_STD}
        return cls(**{**settings, **EVALUATION_RESIZE_AND_CROP, **overrides})

    @classmethod
    def for_segmunich(cls, **overrides) -> SpectralGPTImageProcessor:
        """SegMunich: its 10 bands (`SEGMUNICH_BANDS`) and their per-pixel mean twice, then per-image per-band
        min-max with eps 1e-9 on these 12 channels."""
        settings = {
            "normalization": "min_max", "min_max_epsilon": 1e-9, "band_names": list(SEGMUNICH_BANDS),
            "band_mean_channels": 2,
        }  # fmt: skip
        return cls(**{**settings, **overrides})

    @classmethod
    def for_oscd(cls, **overrides) -> SpectralGPTImageProcessor:
        """OSCD change detection: per-patch per-band min-max. The original used no epsilon (a constant band gave
        NaN); this uses 1e-12 so that a constant band gives 0."""
        return cls(**{"normalization": "min_max", "min_max_epsilon": 1e-12, **overrides})

    def _validate_preprocess_kwargs(self, **kwargs) -> None:
        # transformers passes every option of the processor, defaults merged in.
        options = {**dict.fromkeys(_VALIDATED_OPTIONS), **kwargs}
        (normalization, image_mean, image_std, min_max_epsilon, band_names, num_bands, band_mean_channels, do_rescale,
         rescale_factor, do_resize, size, do_center_crop, crop_size, input_data_format, data_format) = (
            options[name] for name in _VALIDATED_OPTIONS
        )  # fmt: skip
        for name, advice in _UNSUPPORTED_OPTIONS.items():
            if kwargs.get(name) is not None:
                raise ValueError(f"SpectralGPTImageProcessor does not support {name}: {advice}.")
        if data_format not in (None, ChannelDimension.FIRST):
            raise ValueError(f"pixel_values are always channels first; got data_format={data_format!r}.")
        if input_data_format not in (None, ChannelDimension.FIRST, ChannelDimension.LAST):
            raise ValueError(
                f"input_data_format must be 'channels_first' (C, H, W) or 'channels_last' (H, W, C), "
                f"got {input_data_format!r}."
            )
        if normalization not in (*NORMALIZATIONS, None):
            raise ValueError(f"normalization must be one of {NORMALIZATIONS} or None, got {normalization!r}.")
        if normalization == "min_max" and (min_max_epsilon is None or min_max_epsilon < 0):
            raise ValueError(f"min_max normalisation needs min_max_epsilon >= 0, got {min_max_epsilon!r}.")
        if normalization in ("mean_std", "sentinel_normalize"):
            _check_statistics(normalization, image_mean, image_std)
        if band_names is not None:
            if isinstance(band_names, str) or len(set(band_names)) != len(band_names) or not band_names:
                raise ValueError(f"band_names must be a non-empty list of distinct band names, got {band_names!r}.")
            if num_bands is not None and num_bands != len(band_names):
                raise ValueError(
                    f"band_names lists {len(band_names)} bands but num_bands is {num_bands}; give one or the other."
                )
        if num_bands is not None and num_bands < 1:
            raise ValueError(f"num_bands must be a positive number of bands, got {num_bands}.")
        if not isinstance(band_mean_channels, int) or band_mean_channels < 0:
            raise ValueError(f"band_mean_channels must be a whole number >= 0, got {band_mean_channels!r}.")
        expected = _expected_band_count(band_names, num_bands)
        channels = None if expected is None else expected + band_mean_channels
        if normalization in ("mean_std", "sentinel_normalize") and channels not in (None, len(image_mean)):
            means = f" and {band_mean_channels} band-mean channels" if band_mean_channels else ""
            raise ValueError(
                f"image_mean and image_std have {len(image_mean)} values but the processor makes {channels} channels "
                f"({band_names or 'num_bands'}{means}); give one value per channel."
            )
        if do_rescale and rescale_factor is None:
            raise ValueError("do_rescale=True needs rescale_factor, e.g. 1e-4 for Sentinel-2 L2A reflectance.")
        for enabled, value, name in ((do_resize, size, "size"), (do_center_crop, crop_size, "crop_size")):
            if enabled and (value is None or not value.height or not value.width):
                raise ValueError(
                    f"{name} must be {{'height': int, 'width': int}} (or one int for a square) when it is used, "
                    f"got {dict(value) if value is not None else None}."
                )

    def _prepare_image_like_inputs(self, images, input_data_format=None, device=None, **kwargs) -> list[torch.Tensor]:
        """Split the input into single images and convert each to a float64 (C, H, W) tensor."""
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError("Got an empty list of images.")
            single_images = []
            for image in images:
                _check_array_type(image)
                if image.ndim != 3:
                    raise ValueError(
                        f"Each image in a list must have 3 dimensions ({_layout_name(input_data_format)}), "
                        f"got shape {tuple(image.shape)}."
                    )
                single_images.append(image)
        else:
            _check_array_type(images)
            if images.ndim == 3:
                single_images = [images]
            elif images.ndim == 4:
                single_images = list(images)
            else:
                raise ValueError(
                    f"Expected one image {_layout_name(input_data_format)} or a batch with a leading batch "
                    f"dimension, got shape {tuple(images.shape)}."
                )
        return [self.process_image(image, input_data_format, device) for image in single_images]

    def process_image(self, image, input_data_format=None, device=None, **kwargs) -> torch.Tensor:
        """One image (numpy or torch, integer or float) as a float64 channels-first tensor."""
        if isinstance(image, np.ndarray):
            if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
                raise TypeError(f"Images must have an integer or float dtype, got {image.dtype}.")
            tensor = torch.from_numpy(image.astype(np.float64))
        else:
            if image.dtype == torch.bool or image.dtype.is_complex:
                raise TypeError(f"Images must have an integer or float dtype, got {image.dtype}.")
            tensor = image.to(torch.float64)
        if input_data_format == ChannelDimension.LAST:
            tensor = tensor.permute(2, 0, 1)
        return tensor.to(device) if device is not None else tensor

    def _preprocess(
        self,
        images: list[torch.Tensor],
        normalization=None,
        image_mean=None,
        image_std=None,
        min_max_epsilon=None,
        band_names=None,
        num_bands=None,
        band_mean_channels=None,
        do_rescale=None,
        rescale_factor=None,
        do_resize=None,
        size=None,
        do_center_crop=None,
        crop_size=None,
        antialias=None,
        input_data_format=None,
        return_tensors=None,
        **kwargs,
    ) -> BatchFeature:
        expected = _expected_band_count(band_names, num_bands)
        if expected is None and image_mean:
            expected = len(image_mean) - band_mean_channels
        for image in images:
            if expected is not None and image.shape[0] != expected:
                order = f" in order {', '.join(band_names)}" if band_names else ""
                raise ValueError(
                    f"Expected {expected} bands{order}, got {image.shape[0]} channels in an image read as "
                    f"{_layout_name(input_data_format)} with shape {tuple(image.shape)} after moving channels "
                    "first. If the image is (H, W, C), pass input_data_format='channels_last'."
                )
        # Same-shape images are processed as one batch; otherwise one by one.
        if len({image.shape for image in images}) == 1:
            batches = [torch.stack(images)]
        else:
            batches = [image[None] for image in images]
        processed = []
        for batch in batches:
            if band_mean_channels:
                band_mean = batch.mean(dim=1, keepdim=True)
                batch = torch.cat([batch, band_mean.expand(-1, band_mean_channels, -1, -1)], dim=1)
            if do_rescale:
                batch = batch * rescale_factor
            if normalization is not None:
                batch = _normalize(batch, normalization, image_mean, image_std, min_max_epsilon)
            batch = torch.where(torch.isfinite(batch), batch, 0.0)
            if do_resize:
                batch = F.interpolate(
                    batch, size=(size.height, size.width), mode="bicubic", align_corners=False, antialias=antialias
                )
            if do_center_crop:
                batch = _center_crop(batch, crop_size)
            processed.append(batch)
        sizes = {tuple(batch.shape[2:]) for batch in processed}
        if len(sizes) > 1:
            raise ValueError(
                f"The images have different sizes {sorted(sizes)} after processing and cannot be batched; set "
                "do_resize with size, or do_center_crop with crop_size, to give them one size."
            )
        pixel_values = torch.cat(processed).to(torch.float32)
        if return_tensors == "np":
            pixel_values = pixel_values.cpu().numpy()
        return BatchFeature(data={"pixel_values": pixel_values})  # already of the type asked for


def _check_statistics(normalization, image_mean, image_std) -> None:
    if image_mean is None or image_std is None:
        raise ValueError(f"{normalization} normalisation needs image_mean and image_std, one value per band.")
    if isinstance(image_mean, (int, float)) or isinstance(image_std, (int, float)):
        raise ValueError("image_mean and image_std must be lists with one value per band, not single numbers.")
    if len(image_mean) != len(image_std):
        raise ValueError(f"image_mean has {len(image_mean)} values but image_std has {len(image_std)}.")
    if min(image_std) <= 0:
        raise ValueError(f"image_std values must be positive, got {list(image_std)}.")


def _expected_band_count(band_names, num_bands) -> int | None:
    return len(band_names) if band_names is not None else num_bands


def _layout_name(input_data_format) -> str:
    return "(H, W, C) channels_last" if input_data_format == ChannelDimension.LAST else "(C, H, W) channels_first"


def _check_array_type(image) -> None:
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        raise TypeError(
            f"Images must be numpy arrays or torch tensors, got {type(image).__name__}. Read GeoTIFFs with "
            "spectralgpt_hf.geo.read_bands first."
        )


def _per_band(values, batch: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=batch.dtype, device=batch.device)[:, None, None]


def _normalize(batch: torch.Tensor, normalization: str, image_mean, image_std, min_max_epsilon) -> torch.Tensor:
    if normalization == "min_max":
        # Per image and band, ignoring NaN (nodata); an all-NaN band stays NaN and is zeroed afterwards.
        finite = torch.isfinite(batch)
        band_min = torch.where(finite, batch, torch.inf).amin(dim=(2, 3), keepdim=True)
        band_max = torch.where(finite, batch, -torch.inf).amax(dim=(2, 3), keepdim=True)
        return (batch - band_min) / (band_max - band_min + min_max_epsilon)
    mean, std = _per_band(image_mean, batch), _per_band(image_std, batch)
    if normalization == "mean_std":
        return (batch - mean) / std
    # sentinel_normalize, written as the original SentinelNormalize computes it, including the uint8 truncation.
    low, high = mean - 2 * std, mean + 2 * std
    scaled = torch.clamp((batch - low) / (high - low) * 255.0, 0.0, 255.0)
    return torch.floor(scaled) / 255.0


def _center_crop(batch: torch.Tensor, crop_size: SizeDict) -> torch.Tensor:
    height, width = batch.shape[2:]
    if crop_size.height > height or crop_size.width > width:
        raise ValueError(
            f"crop_size {crop_size.height} x {crop_size.width} is larger than the image ({height} x {width}); "
            "resize first (do_resize, size) or choose a smaller crop."
        )
    top = int(round((height - crop_size.height) / 2.0))
    left = int(round((width - crop_size.width) / 2.0))
    return batch[:, :, top : top + crop_size.height, left : left + crop_size.width]
