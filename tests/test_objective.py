"""Span masking, deterministic crop batches, and the masked-prediction loss."""

import numpy as np
import pytest
import torch

from compress_lib.config import config_for_preset
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT
from compress_lib.objective import IGNORE, CropBatcher, masked_prediction_loss, span_mask


@pytest.mark.parametrize("start_prob, span", [(0.14, 5), (0.07, 10)])
def test_span_mask_covers_about_half_of_the_frames(start_prob, span):
    rng = np.random.default_rng(0)
    mask = span_mask([1000] * 20, 1000, start_prob, span, rng)
    fraction = mask.float().mean().item()
    expected = 1 - (1 - start_prob) ** span  # overlapping spans: P(frame covered by no span)
    assert abs(fraction - expected) < 0.03


def test_span_mask_respects_lengths_and_is_made_of_spans():
    mask = span_mask([30, 12, 3], 30, 0.14, 5, np.random.default_rng(1))
    assert not mask[1, 12:].any() and not mask[2].any()  # nothing past the end; too short to mask
    row = mask[0].int().tolist()
    runs = [len(r) for r in "".join(map(str, row)).split("0") if r]
    assert runs and all(r >= 5 for r in runs)  # every masked run is at least one span long


def _data(n=6, length=40, dim=80, k=7):
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(length + 3 * i, dim, generator=g) for i in range(n)]
    targets = [torch.randint(0, k, (length + 3 * i,), generator=g) for i in range(n)]
    return feats, targets


def test_crop_batcher_is_a_pure_function_of_seed_step_micro_rank():
    feats, targets = _data()
    a = CropBatcher(feats, targets, crop_frames=25, batch_size=3, start_prob=0.14, span=5, seed=3)
    b = CropBatcher(feats, targets, crop_frames=25, batch_size=3, start_prob=0.14, span=5, seed=3)
    x, y = a(5, 1, 0), b(5, 1, 0)
    for t, u in zip((x.feats, x.frame_mask, x.targets), (y.feats, y.frame_mask, y.targets)):
        assert torch.equal(t, u)
    assert x.feats.shape == (3, 25, 80)
    assert not torch.equal(a(5, 1, 1).feats, x.feats)  # another rank sees other crops
    assert not torch.equal(a(6, 1, 0).feats, x.feats)


def test_short_utterances_are_padded():
    feats, targets = _data(n=2, length=10)
    batch = CropBatcher(feats, targets, crop_frames=50, batch_size=4, start_prob=0.14, span=5, seed=0)(0)
    lengths = (~batch.padding_mask).sum(1)
    assert set(lengths.tolist()) <= {10, 13}
    assert (batch.targets[batch.padding_mask] == IGNORE).all()
    assert not (batch.frame_mask & batch.padding_mask).any()


def test_crop_batcher_rejects_misaligned_targets():
    feats, targets = _data()
    targets[2] = targets[2][:-1]
    with pytest.raises(CompressLibError, match="refit"):
        CropBatcher(feats, targets, 20, 2, 0.14, 5, 0)
    with pytest.raises(CompressLibError, match="empty"):
        CropBatcher([], [], 20, 2, 0.14, 5, 0)


def test_loss_counts_only_masked_frames():
    torch.manual_seed(0)
    model = MelHuBERT(config_for_preset("smoke", 20, num_clusters=7)).eval()
    feats, targets = _data()
    batch = CropBatcher(feats, targets, 30, 2, 0.14, 5, seed=0)(0)
    loss, metrics = masked_prediction_loss(model, batch)
    changed = batch.targets.clone()
    unmasked = ~batch.frame_mask & ~batch.padding_mask
    changed[unmasked] = (changed[unmasked] + 1) % 7  # targets of unmasked frames do not matter
    batch.targets = changed
    loss2, _ = masked_prediction_loss(model, batch)
    assert torch.equal(loss, loss2)
    assert metrics["masked_frames"] == int((batch.frame_mask & ~batch.padding_mask).sum())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert abs(loss.item() - np.log(7)) < 1.0  # an untrained head is near chance
