"""The masked-prediction objective of MelHuBERT, shared by pretraining and every pruning method's fine-tuning.

    L = - sum over masked frames t of log p(c_t | x),   p(c | x) = softmax(W o_t)          (paper eqs. 1-2)

Batches are a pure function of (seed, step, micro-batch, rank): the crops, their offsets and the span masks are
drawn from a generator seeded with those numbers, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from compress_lib.errors import CompressLibError

IGNORE = -100  # target value of padded frames


def span_mask(lengths: list[int], max_len: int, start_prob: float, span: int, rng: np.random.Generator,
              min_spans: int = 2) -> torch.Tensor:
    """Span masking as in HuBERT / MelHuBERT.

    Each utterance of L frames gets round(start_prob * L) span starts (randomised rounding, at least
    `min_spans` as in the public code), drawn without replacement from [0, L - span]; each start masks `span`
    frames (spans may overlap). The public code's `mask_prob` is start_prob * span (0.7). The paper's settings:
    start_prob 0.07 with span 10 at 10 ms, 0.14 with span 5 at 20 ms (about 50% of frames end up masked).

    Returns: (B, max_len) bool, True at masked frames.
    """
    mask = torch.zeros(len(lengths), max_len, dtype=torch.bool)
    for i, length in enumerate(lengths):
        if length <= span:
            continue
        num_spans = int(start_prob * length + rng.random())
        num_spans = min(max(num_spans, min_spans), length - span + 1)
        starts = rng.choice(length - span + 1, size=num_spans, replace=False)
        for s in starts:
            mask[i, s : s + span] = True
    return mask


@dataclass
class Batch:
    feats: torch.Tensor  # (B, T, F) normalised log-Mel
    padding_mask: torch.Tensor  # (B, T) True at padding
    frame_mask: torch.Tensor  # (B, T) True at masked input frames
    targets: torch.Tensor  # (B, T) cluster index, IGNORE at padding

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device) for t in (self.feats, self.padding_mask, self.frame_mask, self.targets)))


class CropBatcher:
    """Random fixed-length crops of utterances with their frame targets and span masks.

    Args:
        feats: per-utterance features, each (T_i, F).
        targets: per-utterance cluster labels, each (T_i,), aligned with `feats`.
        crop_frames: maximum frames per crop (shorter utterances are used whole and padded).
        batch_size: crops per micro-batch (per rank).
        start_prob, span: span-masking parameters (see `span_mask`).
        seed: the run's seed.
    """

    def __init__(self, feats, targets, crop_frames: int, batch_size: int, start_prob: float, span: int, seed: int):
        if len(feats) == 0:
            raise CompressLibError("no training utterances: the pretrain split is empty; regenerate the corpus")
        if len(feats) != len(targets):
            raise CompressLibError(f"{len(feats)} utterances but {len(targets)} target sequences; refit the k-means targets")
        for i, (f, t) in enumerate(zip(feats, targets)):
            if f.shape[0] != t.shape[0]:
                raise CompressLibError(
                    f"utterance {i}: {f.shape[0]} feature frames but {t.shape[0]} targets; the targets were made "
                    "at another frame rate: refit them"
                )
        self.feats, self.targets = feats, targets
        self.crop_frames, self.batch_size = crop_frames, batch_size
        self.start_prob, self.span, self.seed = start_prob, span, seed

    def __call__(self, step: int, micro: int = 0, rank: int = 0) -> Batch:
        rng = np.random.default_rng([self.seed, step, micro, rank])
        picks = rng.integers(0, len(self.feats), size=self.batch_size)
        crops, crop_targets = [], []
        for i in picks:
            f, t = self.feats[i], self.targets[i]
            n = min(f.shape[0], self.crop_frames)
            start = int(rng.integers(0, f.shape[0] - n + 1))
            crops.append(f[start : start + n])
            crop_targets.append(t[start : start + n])
        return collate(crops, crop_targets, self.start_prob, self.span, rng)


def collate(feats, targets, start_prob: float, span: int, rng: np.random.Generator) -> Batch:
    """Pad a list of (T_i, F) features and (T_i,) targets into a Batch with span masks."""
    lengths = [f.shape[0] for f in feats]
    T = max(lengths)
    B, Fdim = len(feats), feats[0].shape[1]
    x = torch.zeros(B, T, Fdim)
    y = torch.full((B, T), IGNORE, dtype=torch.long)
    pad = torch.ones(B, T, dtype=torch.bool)
    for i, (f, t) in enumerate(zip(feats, targets)):
        x[i, : f.shape[0]] = f
        y[i, : t.shape[0]] = t
        pad[i, : f.shape[0]] = False
    return Batch(feats=x, padding_mask=pad, frame_mask=span_mask(lengths, T, start_prob, span, rng), targets=y)


def masked_prediction_loss(model, batch: Batch) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of the cluster head on masked, non-padded frames; also returns masked-prediction accuracy."""
    out = model(batch.feats, padding_mask=batch.padding_mask, frame_mask=batch.frame_mask)
    selected = batch.frame_mask & ~batch.padding_mask  # (B, T)
    logits = out.logits[selected]  # (N, K)
    targets = batch.targets[selected]  # (N,)
    if targets.numel() == 0:
        zero = out.logits.sum() * 0.0
        return zero, {"accuracy": 0.0, "masked_frames": 0}
    loss = F.cross_entropy(logits, targets)
    accuracy = (logits.argmax(-1) == targets).float().mean()
    return loss, {"accuracy": float(accuracy), "masked_frames": int(targets.numel())}


@torch.no_grad()
def masked_prediction_metrics(model, batches, device="cpu") -> dict:
    """Mean masked-prediction loss and accuracy over fixed `batches` in eval mode (the model's mode restored): how
    pretraining reports its held-out loss and how every compression point is measured."""
    was_training = model.training
    model.eval()
    losses, accuracies = [], []
    for batch in batches:
        loss, metrics = masked_prediction_loss(model, batch.to(device))
        losses.append(float(loss))
        accuracies.append(metrics["accuracy"])
    model.train(was_training)
    return {"loss": sum(losses) / len(losses), "accuracy": sum(accuracies) / len(accuracies)}
