"""SUPERB-style probes on a frozen upstream (the s3prl recipes of the paper).

Both probes read a learnable softmax-weighted sum of all hidden states of the upstream (weights initialised
to zero, i.e. equal after the softmax), project it to 256 dimensions and classify:

    phone recognition (PR):   h (B, L, T, D) -> sum_l softmax(a)_l h_l -> Linear(D, 256) -> Linear(256, 1 + 39)
                              -> CTC (blank = 0); greedy decoding; phone error rate by edit distance
    speaker ID (SID):         h (B, L, T, D) -> sum_l softmax(a)_l h_l -> Linear(D, 256) -> mean over frames
                              -> Linear(256, speakers) -> cross-entropy; accuracy

The SID probe is linear up to its pooling, so the mean over frames commutes with the weighted sum and the
projection: `SpeakerIDProbe.forward_pooled` on per-layer frame means (B, L, D) gives exactly the logits of the
frame-level `forward`. The evaluation therefore caches only the per-layer means of SID utterances.

Hidden states are layer-major, (B, L, T, D): the weighted sum is then one matrix-vector product per utterance
over contiguous memory, the fastest layout on a CPU (the probes are memory-bound).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.functional import edit_distance

BLANK = 0  # CTC blank index; phone i of the inventory is class i + 1
PROJECT_DIM = 256  # s3prl's project_dim (PR) / projector_dim (SID)


class WeightedLayerSum(nn.Module):
    """sum_l softmax(a)_l h_l over the layer axis (s3prl's featurizer), weights initialised equal."""

    def __init__(self, num_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, L, ...) -> (B, ...): (B, L, T, D) frames -> (B, T, D); (B, L, D) means -> (B, D)."""
        B, L = hidden.shape[:2]
        if L != self.weights.numel():
            raise ValueError(
                f"expected {self.weights.numel()} hidden states on axis 1, found shape {tuple(hidden.shape)}"
            )
        w = F.softmax(self.weights, dim=0)  # (L,)
        # (B, 1, L) @ (B, L, T*D) as one bmm: ~7x faster on CPU than matmul(w, .), which copies a transpose
        return torch.bmm(w.expand(B, 1, L), hidden.reshape(B, L, -1)).view(B, *hidden.shape[2:])

    def layer_weights(self) -> list[float]:
        return F.softmax(self.weights.detach(), dim=0).tolist()


class _LayerSumProbe(nn.Module):
    """Weighted sum of the L hidden states -> Linear(D, 256) -> ... -> Linear(256, num_classes)."""

    def __init__(self, num_layers: int, dim: int, num_classes: int, project_dim: int = PROJECT_DIM):
        super().__init__()
        self.weighted_sum = WeightedLayerSum(num_layers)
        self.projector = nn.Linear(dim, project_dim)
        self.classifier = nn.Linear(project_dim, num_classes)


class PhoneRecognitionProbe(_LayerSumProbe):
    """Weighted sum -> Linear(D, 256) -> Linear(256, num_classes) per frame (s3prl's PR `FrameLevel` probe)."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, L, T, D) hidden states -> (B, T, num_classes) logits."""
        x = self.weighted_sum(hidden)  # (B, T, D)
        # classifier(projector(x)) with nothing in between is one linear map: compose the two weights first
        # (C x D) instead of computing a 256-wide activation per frame. Same function and gradients, ~6x fewer MACs.
        weight = self.classifier.weight @ self.projector.weight  # (C, 256) @ (256, D) -> (C, D)
        bias = self.classifier.weight @ self.projector.bias + self.classifier.bias  # (C,)
        return F.linear(x, weight, bias)  # (B, T, C)


class SpeakerIDProbe(_LayerSumProbe):
    """Weighted sum -> Linear(D, 256) -> mean over frames -> Linear(256, speakers) (s3prl's `UtteranceLevel`)."""

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, T, D) padded hidden states and (B,) frame counts -> (B, num_speakers) logits."""
        x = self.projector(self.weighted_sum(hidden))  # (B, T, 256)
        valid = torch.arange(hidden.shape[2])[None, :] < lengths[:, None]  # (B, T)
        pooled = (x * valid[..., None]).sum(1) / lengths[:, None].to(x.dtype)  # (B, 256)
        return self.classifier(pooled)

    def forward_pooled(self, pooled_hidden: torch.Tensor) -> torch.Tensor:
        """(B, L, D) per-layer means over frames -> (B, num_speakers); equal to `forward` by linearity."""
        return self.classifier(self.projector(self.weighted_sum(pooled_hidden)))


def ctc_loss(logits: torch.Tensor, lengths: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
    """Mean CTC loss (blank 0, infinite losses zeroed as in s3prl's `zero_infinity`).

    logits (B, T, C); lengths (B,) valid frames; targets: B tensors of class indices in 1..C-1.
    """
    log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # (T, B, C)
    target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    return F.ctc_loss(log_probs, torch.cat(targets), lengths, target_lengths, blank=BLANK, zero_infinity=True)


def ctc_greedy_decode(logits: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best class per frame, repeats merged, blanks removed. logits (B, T, C), lengths (B,) -> B label lists."""
    best = logits.argmax(-1)  # (B, T)
    hyps = []
    for b in range(best.shape[0]):
        merged = torch.unique_consecutive(best[b, : int(lengths[b])])
        hyps.append([int(c) for c in merged if c != BLANK])
    return hyps


def phone_error_rate(hyps: list[list[int]], refs: list[list[int]]) -> float:
    """PER in percent: total edit distance (substitutions + deletions + insertions) over total reference length."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    errors = sum(edit_distance(ref, hyp) for hyp, ref in zip(hyps, refs))
    total = sum(len(ref) for ref in refs)
    if total == 0:
        raise ValueError("the references hold no phones; cannot compute a phone error rate")
    return 100.0 * errors / total


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent. logits (N, C), labels (N,)."""
    return 100.0 * float((logits.argmax(-1) == labels).float().mean())
