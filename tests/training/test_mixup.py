"""The EuroSAT recipe's batch mixing: mixup and cutmix with label smoothing in the targets."""

import pytest
import torch

from spectralgpt_hf.training.mixup import MixupCutmix


def mix(mixing, seed):
    """A batch of 4 images, each constant at its index + 1 in every band, mixed with `seed`; returns the images,
    the mixed images and the mixed targets."""
    torch.manual_seed(seed)
    images = torch.arange(1.0, 5.0).reshape(4, 1, 1, 1).expand(4, 2, 16, 16).contiguous()
    mixed, targets = mixing(images, torch.tensor([0, 1, 2, 0]))
    return images, mixed, targets


def test_mixup_blends_each_image_with_its_mirror_and_their_targets_alike():
    mixing = MixupCutmix(num_labels=3, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    weights = []
    for seed in range(20):
        images, mixed, targets = mix(mixing, seed)
        lam = float(targets[1, 1])  # image 1 (class 1) is mixed with image 2 (class 2)
        torch.testing.assert_close(mixed, lam * images + (1 - lam) * images.flip(0))
        expected = torch.tensor([[lam, 0.0, 1 - lam], [0.0, lam, 1 - lam], [0.0, 1 - lam, lam], [1 - lam, 0.0, lam]])
        expected[0, 0] = expected[3, 0] = 1.0  # images 0 and 3 are both class 0
        expected[0, 2] = expected[3, 2] = 0.0
        torch.testing.assert_close(targets, expected)
        weights.append(lam)
    assert 0 < min(weights) < 0.3 and 0.7 < max(weights) < 1  # Beta(0.8, 0.8) spreads over (0, 1)


def test_cutmix_pastes_a_box_of_the_mirror_and_weighs_targets_by_its_area():
    mixing = MixupCutmix(num_labels=3, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0)
    for seed in range(20):
        images, mixed, targets = mix(mixing, seed)
        pasted = mixed != images
        assert torch.equal(mixed[pasted], images.flip(0)[pasted])
        box = pasted[1, 0]  # one box, the same for every image and band
        assert torch.equal(pasted, box.expand_as(pasted))
        rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
        if len(rows):
            assert box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
        torch.testing.assert_close(targets[1], torch.tensor([0.0, 1 - box.float().mean(), box.float().mean()]))


def test_mixing_switches_between_methods_and_smooths_the_targets():
    mixing = MixupCutmix(num_labels=3, label_smoothing=0.3)  # the EuroSAT recipe's alphas and switch
    cutmix_batches = 0
    for seed in range(40):
        images, mixed, targets = mix(mixing, seed)
        cutmix_batches += bool(torch.isin(mixed, images).all())  # cutmix keeps pixel values, mixup blends them
        torch.testing.assert_close(targets.sum(-1), torch.ones(4))
        assert targets.min() >= 0.1 - 1e-6  # smoothing / classes everywhere
        torch.testing.assert_close(targets[0], targets[3])  # two images of class 0 keep the same target
    assert 10 < cutmix_batches < 30
    with pytest.raises(ValueError, match="one of them > 0"):
        MixupCutmix(3, mixup_alpha=0.0, cutmix_alpha=0.0)
    with pytest.raises(ValueError, match="one class id per image"):
        mixing(torch.rand(4, 2, 8, 8), torch.rand(4, 3))
