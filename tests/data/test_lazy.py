"""What every loader shares: nothing is read until an example is accessed, and batches collate for Trainer."""

import pytest
import torch
from transformers import default_data_collator

from spectralgpt_hf.data import load_bigearthnet, load_eurosat, load_segmunich

from decoding_checks import count_reads

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_loaders_read_nothing_until_accessed(eurosat_root, bigearthnet_root, segmunich_root, monkeypatch):
    reads = count_reads(monkeypatch)
    datasets = [load_eurosat(eurosat_root), load_bigearthnet(bigearthnet_root[0]), load_segmunich(segmunich_root)]
    assert reads == []
    for dataset in datasets:
        dataset[0]
    assert len(reads) == 3


def test_dataloader_batches_with_default_collator(bigearthnet_root, eurosat_root):
    loader = torch.utils.data.DataLoader(
        load_bigearthnet(bigearthnet_root[0]), batch_size=2, collate_fn=default_data_collator
    )
    batch = next(iter(loader))
    assert batch["pixel_values"].shape == (2, 12, 128, 128) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].shape == (2, 19) and batch["labels"].dtype == torch.float32
    batch = default_data_collator([load_eurosat(eurosat_root)[index] for index in (0, 2)])
    assert batch["labels"].tolist() == [0, 9] and batch["labels"].dtype == torch.int64
