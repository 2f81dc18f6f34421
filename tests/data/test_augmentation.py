"""The training augmentations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spectralgpt_hf.data import RandomFlipsAndRotations, RandomResizedCropAndFlip

from decoding_checks import dihedral_images


def test_random_resized_crop_shape_and_determinism():
    image = torch.rand(12, 64, 64, generator=torch.Generator().manual_seed(0))
    first = [RandomResizedCropAndFlip(128, seed=1)(image) for _ in range(2)]
    augmentation = RandomResizedCropAndFlip(128, seed=1)
    repeated = [augmentation(image), augmentation(image)]
    assert first[0].shape == (12, 128, 128) and first[0].dtype == torch.float32
    assert torch.equal(first[0], first[1]) and torch.equal(first[0], repeated[0])
    assert not torch.equal(repeated[0], repeated[1])
    assert not torch.equal(first[0], RandomResizedCropAndFlip(128, seed=2)(image))


def test_random_resized_crop_of_the_whole_image_is_a_bicubic_resize():
    image = torch.rand(3, 40, 40)
    resized = F.interpolate(image[None], size=(96, 96), mode="bicubic", align_corners=False)[0]
    whole = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), seed=0)
    torch.testing.assert_close(RandomResizedCropAndFlip(96, flip_probability=0.0, **whole)(image), resized)
    torch.testing.assert_close(RandomResizedCropAndFlip(96, flip_probability=1.0, **whole)(image), resized.flip(-1))


def test_flips_and_rotations_move_all_tensors_together():
    mask = torch.arange(6 * 6).reshape(6, 6)
    image = torch.stack([mask.float(), -mask.float()])
    seen = set()
    for seed in range(100):
        moved_image, moved_second, moved_mask = RandomFlipsAndRotations(seed=seed)(image, image + 1, mask)
        candidates = dihedral_images(mask.numpy())
        seen.update(index for index, candidate in enumerate(candidates) if np.array_equal(candidate, moved_mask))
        assert torch.equal(moved_image[0], moved_mask.float()) and torch.equal(moved_image[1], -moved_mask.float())
        assert torch.equal(moved_second, moved_image + 1)
    assert seen == set(range(8))
    unchanged = RandomFlipsAndRotations(0.0, 0.0, rotate=False, seed=0)(mask)
    assert torch.equal(unchanged, mask)
    with pytest.raises(ValueError, match="share their last two"):
        RandomFlipsAndRotations()(image, mask[:5])


class _SameImage(torch.utils.data.Dataset):
    def __init__(self, augmentation):
        self.image, self.augmentation = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0)), augmentation

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return self.augmentation(self.image)


def test_seeded_augmentation_differs_between_dataloader_workers():
    def crops():
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader(_SameImage(RandomResizedCropAndFlip(8, seed=3)), num_workers=2)
        return [batch[0] for batch in loader]

    first, second = crops(), crops()
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    # Items 0 and 1 are the first draw of worker 0 and of worker 1.
    assert not torch.equal(first[0], first[1])
