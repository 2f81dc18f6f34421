"""Batch mixing for classification fine-tuning: the mixup / cutmix of the original EuroSAT recipe."""

import math

import torch
import torch.nn.functional as F


class MixupCutmix:
    """The batch mixing of the original EuroSAT recipe (timm's `Mixup` in batch mode, with its defaults there: mixup
    0.8, cutmix 1.0, switch 0.5, label smoothing 0.1). One draw per batch: with `switch_probability` (or always,
    when only one alpha is positive) the batch gets cutmix, else mixup, with a weight lam ~ Beta(alpha, alpha) of
    that method's alpha. Each image is mixed with the image at the mirrored position of the batch (the batch
    reversed):

    * mixup: lam * image + (1 - lam) * partner;
    * cutmix: a box about sqrt(1 - lam) of the height and width, centred at a uniform pixel and clipped to the
      image, is copied from the partner, and lam becomes the share of the image left uncovered.

    Labels (class ids) become lam * target + (1 - lam) * partner's target, where a target is the one-hot vector
    smoothed by `label_smoothing` (1 - smoothing + smoothing / classes for the class, smoothing / classes elsewhere).
    `SpectralGPTForImageClassification` takes such class probabilities as labels. Draws from torch's global
    generator. Called on a batch: `mixing(pixel_values (B, C, H, W), labels (B,))` -> (pixel_values, labels (B, K)).
    """

    def __init__(
        self,
        num_labels: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        switch_probability: float = 0.5,
        label_smoothing: float = 0.1,
    ):
        if mixup_alpha < 0 or cutmix_alpha < 0 or mixup_alpha + cutmix_alpha == 0:
            raise ValueError(
                f"mixup_alpha and cutmix_alpha must be >= 0 and one of them > 0, got {mixup_alpha} and {cutmix_alpha}."
            )
        if not 0 <= switch_probability <= 1 or not 0 <= label_smoothing < 1 or num_labels < 2:
            raise ValueError(
                "Expected 0 <= switch_probability <= 1, 0 <= label_smoothing < 1 and num_labels >= 2; got "
                f"{switch_probability}, {label_smoothing} and {num_labels}."
            )
        self.num_labels = num_labels
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.switch_probability, self.label_smoothing = switch_probability, label_smoothing

    def __call__(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if pixel_values.ndim != 4 or labels.shape != pixel_values.shape[:1] or labels.is_floating_point():
            raise ValueError(
                "Expected a batch of images (B, C, H, W) and one class id per image (B,), got shapes "
                f"{tuple(pixel_values.shape)} and {tuple(labels.shape)} (labels {labels.dtype})."
            )
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or float(torch.rand(())) < self.switch_probability)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        partners = pixel_values.flip(0)
        if use_cutmix:
            height, width = pixel_values.shape[-2:]
            cut_height, cut_width = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
            centre_y, centre_x = int(torch.randint(height, ())), int(torch.randint(width, ()))
            top, bottom = max(centre_y - cut_height // 2, 0), min(centre_y + cut_height // 2, height)
            left, right = max(centre_x - cut_width // 2, 0), min(centre_x + cut_width // 2, width)
            mixed = pixel_values.clone()
            mixed[..., top:bottom, left:right] = partners[..., top:bottom, left:right]
            lam = 1 - (bottom - top) * (right - left) / (height * width)
        else:
            mixed = torch.lerp(partners, pixel_values, lam)
        smoothing = self.label_smoothing
        targets = F.one_hot(labels, self.num_labels).to(pixel_values.dtype)
        targets = targets * (1 - smoothing) + smoothing / self.num_labels
        return mixed, lam * targets + (1 - lam) * targets.flip(0)


__all__ = ["MixupCutmix"]
