"""Head pruning: remove whole attention heads, physically (paper sections III-C and IV-C).

    score   importance of head h (Michel et al. 2019): I_h = sum over tokens |J_h . dL/dJ_h|, J_h (T, head_dim)
            the head's attention-weighted values, summed over a fraction of the training utterances
            (paper: 25%); or the L1 norm of the head's weights (the paper's weaker alternative)
    select  normalise the scores within each layer (L2), rank all heads of all layers together and pick the
            lowest `n` (paper: 12 of 144), never a layer's best head (unless configured otherwise)
    apply   slice the head's rows out of q/k/v and its columns out of the output projection; fine-tune

A layer may lose all its heads (with keep_best_head off): the attention block then adds only its output bias.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from compress_lib.compression.context import CompressionContext, holds_out_dir, open_run, run_pruning_trajectory
from compress_lib.compression.surgery import head_feature_index, slice_linear, unfrozen_copy
from compress_lib.compression.trajectory import Stage
from compress_lib.config import MelHuBERTConfig
from compress_lib.model import MelHuBERT
from compress_lib.objective import collate, masked_prediction_loss
from compress_lib.training import step_seed

DENSITY_OF = "attention heads left / the teacher's heads"


# -- score ----------------------------------------------------------------------------------------------------------
def score_batches(ctx: CompressionContext, fraction: float, salt: int):
    """Batches covering `fraction` of the training utterances (a seeded choice), cut into crops of at most
    ctx.crop_frames frames, with the pretraining span masks. A generator: nothing is kept in memory."""
    rng = np.random.default_rng(step_seed(ctx.seed, 0, salt=salt))
    n = max(1, math.ceil(fraction * len(ctx.feats)))
    chosen = rng.permutation(len(ctx.feats))[:n]
    pieces = []  # (feats (t, F), targets (t,))
    for i in chosen:
        f, t = ctx.feats[i], ctx.targets[i]
        for start in range(0, f.shape[0], ctx.crop_frames):
            pieces.append((f[start: start + ctx.crop_frames], t[start: start + ctx.crop_frames]))
    cfg = ctx.teacher.cfg
    for b in range(0, len(pieces), ctx.settings.batch_size):
        chunk = pieces[b: b + ctx.settings.batch_size]
        yield collate([p[0] for p in chunk], [p[1] for p in chunk], cfg.mask_prob, cfg.mask_length, rng)


def gradient_head_scores(model: MelHuBERT, batches) -> list[torch.Tensor]:
    """Per layer, a (H_l,) tensor: sum over batches and non-padded tokens of |J_h(t) . dL/dJ_h(t)|.

    J_h is captured by `SelfAttention.capture_context`; the model runs in eval mode (no dropout) on the
    pretraining loss. Gradients of the weights are computed along the way and cleared afterwards.
    """
    attns = [layer.self_attn for layer in model.layers]
    scores = [torch.zeros(a.num_heads, dtype=torch.float64) for a in attns]
    was_training = model.training
    model.eval()
    for a in attns:
        a.capture_context = True
    try:
        for batch in batches:
            model.zero_grad(set_to_none=True)
            loss, _ = masked_prediction_loss(model, batch)
            loss.backward()
            valid = (~batch.padding_mask).to(torch.float64)  # (B, T)
            for a, s in zip(attns, scores):
                if a.num_heads == 0:
                    continue
                J = a.context  # (B, H, T, hd)
                per_token = (J.detach() * J.grad).sum(-1).abs().to(torch.float64)  # (B, H, T)
                s += (per_token * valid[:, None, :]).sum(dim=(0, 2))
    finally:
        for a in attns:
            a.capture_context = False
            a.context = None
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return [s.float() for s in scores]


def l1_head_scores(model: MelHuBERT) -> list[torch.Tensor]:
    """Per layer, (H_l,): L1 norm of each head's q/k/v rows (weights and biases) and output-projection columns."""
    scores = []
    for layer in model.layers:
        a = layer.self_attn
        H, hd = a.num_heads, a.head_dim
        s = torch.zeros(H)
        for proj in (a.q_proj, a.k_proj, a.v_proj):
            s += proj.weight.detach().abs().sum(1).view(H, hd).sum(1) + proj.bias.detach().abs().view(H, hd).sum(1)
        s += a.out_proj.weight.detach().abs().sum(0).view(H, hd).sum(1)
        scores.append(s)
    return scores


def normalise_per_layer(scores: list[torch.Tensor]) -> list[torch.Tensor]:
    """Divide each layer's scores by their L2 norm, so that layers with larger gradients do not dominate."""
    return [s / s.norm() if s.numel() and s.norm() > 0 else s.clone() for s in scores]


# -- select ---------------------------------------------------------------------------------------------------------
def select_heads(scores: list[torch.Tensor], n: int, keep_best: bool = True) -> dict[int, list[int]]:
    """The `n` lowest-scoring heads over all layers: {layer: [head indices]}.

    keep_best: each layer's highest-scoring head is never chosen. Ties go to the earlier layer / head.
    """
    candidates = []  # (score, layer, head)
    for layer, s in enumerate(scores):
        if s.numel() == 0:
            continue
        best = int(torch.argmax(s))
        candidates += [(float(s[h]), layer, h) for h in range(s.numel()) if not (keep_best and h == best)]
    candidates.sort()
    chosen: dict[int, list[int]] = {}
    for _, layer, head in candidates[:n]:
        chosen.setdefault(layer, []).append(head)
    return {layer: sorted(heads) for layer, heads in sorted(chosen.items())}


# -- apply ----------------------------------------------------------------------------------------------------------
def prune_heads(model: MelHuBERT, remove: dict[int, list[int]]) -> MelHuBERTConfig:
    """Remove heads physically: q/k/v lose the heads' rows, the output projection their columns.

    Returns (and sets) the model's new config with the new `layer_heads`.
    """
    for layer_idx, heads in remove.items():
        a = model.layers[layer_idx].self_attn
        keep = [h for h in range(a.num_heads) if h not in set(heads)]
        idx = head_feature_index(keep, a.head_dim)  # (len(keep) * hd,)
        a.q_proj = slice_linear(a.q_proj, 0, idx)
        a.k_proj = slice_linear(a.k_proj, 0, idx)
        a.v_proj = slice_linear(a.v_proj, 0, idx)
        a.out_proj = slice_linear(a.out_proj, 1, idx)
        a.num_heads = len(keep)
    model.cfg = model.cfg.replace(layer_heads=[layer.self_attn.num_heads for layer in model.layers])
    return model.cfg


# -- policy ---------------------------------------------------------------------------------------------------------
def head_totals(layer_heads: list[int], per_step: int, keep_best: bool = True) -> list[int]:
    """Total heads left after each pruning step until nothing more can go (deterministic: scores decide
    *which* heads go, never how many)."""
    total = sum(layer_heads)
    floor = sum(1 for h in layer_heads if h > 0) if keep_best else 0
    totals = []
    while total > floor:
        total = max(floor, total - per_step)
        totals.append(total)
    return totals


def head_pruning_stage(ctx: CompressionContext, k: int, n: int, measure) -> Stage:
    """Stage k: score the heads of the previous point's model, remove the `n` least important, fine-tune."""
    s = ctx.settings

    def prepare(previous):
        model = unfrozen_copy(previous[0])
        if s.head_score == "gradient":
            batches = tqdm(score_batches(ctx, s.head_score_fraction, salt=5_000 + k), desc=f"scoring heads ({k})",
                           disable=not ctx.progress, leave=False)
            raw = gradient_head_scores(model, batches)
        else:
            raw = l1_head_scores(model)
        scores = normalise_per_layer(raw)
        remove = select_heads(scores, n, keep_best=s.keep_best_head)
        prune_heads(model, remove)
        info = {"removed_heads": [[layer, h] for layer, heads in remove.items() for h in heads],
                "head_scores": [[round(float(x), 6) for x in layer_scores] for layer_scores in scores]}
        return model, None, info

    return Stage(f"remove {n} heads", prepare, ctx.pruning_fine_tuner(k, f"head pruning step {k}"), measure)


# -- the trajectory ------------------------------------------------------------------------------------------------
@holds_out_dir("heads")
def run_heads(teacher_path, feats, targets, out_dir, preset: str = "study", seed: int = 0,
              target_density: float | None = None, progress: bool = True, **overrides) -> list[dict]:
    """Head-pruning trajectory from the teacher (resumable); returns its points (point 0: the teacher)."""
    ctx, traj = open_run("heads", out_dir, teacher_path, feats, targets, preset, seed, overrides,
                         info={"density_of": DENSITY_OF}, progress=progress)
    s = ctx.settings
    per_step = max(1, round(s.heads_per_step * sum(ctx.teacher.cfg.layer_heads)))
    traj.info["heads_per_step"] = per_step
    return run_pruning_trajectory(
        ctx, traj, "head pruning", size=lambda model: sum(model.cfg.layer_heads),
        totals=head_totals(ctx.teacher.cfg.layer_heads, per_step, s.keep_best_head),
        default_density=s.heads_min_density, target_density=target_density,
        make_stage=lambda k, removed, measure: head_pruning_stage(ctx, k, removed, measure))
