"""Weight pruning: iterative global magnitude pruning with binary masks (paper sections III-B and IV-B).

    score   |theta_i| of every prunable entry; entries pruned before score -1, so masks only ever shrink
    select  keep the round(density * N) highest scores over all layers together (one global threshold)
    apply   theta <- m * theta; fine-tune with the mask re-applied after every update until the EMA of the
            loss has stopped changing, then move to the next density of the schedule

Prunable: the q/k/v/out projections and FC1/FC2 of every layer, weights and biases. Masks keep tensors dense
(a masked model runs as fast as the unpruned one); parameter and MAC counts of a masked model are non-zero
counts, so the checkpoint stores the masks beside the (zeroed) weights.
"""

from __future__ import annotations

import torch

from compress_lib.compression.context import (
    EmaConvergence, check_target, densities_until, holds_out_dir, no_training, open_run, pruning_point,
)
from compress_lib.compression.surgery import apply_masks, unfrozen_copy
from compress_lib.compression.trajectory import Stage, copy_previous, run_trajectory
from compress_lib.model import MelHuBERT

PRUNABLE_MODULES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2")
# (step, until): remove `step` of the density at a time until `until` (paper: 20% to 80%, 10% to 50%, ...)
DENSITY_SCHEDULE = ((0.20, 0.80), (0.10, 0.50), (0.05, 0.35), (0.025, 0.30), (0.01, 0.10), (0.005, 0.05))
DENSITY_OF = "non-zero fraction of the prunable weights (q/k/v/out, FC1/FC2 weights and biases of all layers)"


def schedule_densities(schedule=DENSITY_SCHEDULE) -> list[float]:
    """The densities the schedule visits after 1.0: [0.8, 0.7, 0.6, 0.5, 0.45, ..., 0.3, 0.29, ..., 0.05]."""
    densities, d = [], 1.0
    for step, until in schedule:
        while d - step >= until - 1e-9:
            d = round(d - step, 6)
            densities.append(d)
    return densities


def prunable_parameters(model: MelHuBERT) -> dict[str, torch.nn.Parameter]:
    """Parameter name -> parameter, for the weights and biases weight pruning acts on."""
    out = {}
    for name, p in model.named_parameters():
        parts = name.split(".")  # layers.<i>.<module path>.<weight|bias>
        if parts[0] == "layers" and ".".join(parts[2:-1]) in PRUNABLE_MODULES:
            out[name] = p
    return out


# -- score -> select -> apply ---------------------------------------------------------------------------------------
def magnitude_scores(params: dict, masks: dict | None = None) -> dict[str, torch.Tensor]:
    """|theta| per entry; entries already masked out score -1 (below every live weight)."""
    scores = {}
    for name, p in params.items():
        s = p.detach().abs().clone()
        if masks is not None and name in masks:
            s[~masks[name]] = -1.0
        scores[name] = s
    return scores


def select_global(scores: dict[str, torch.Tensor], density: float) -> dict[str, torch.Tensor]:
    """Masks keeping exactly round(density * N) entries: the highest scores over all tensors together.

    Ties are broken by position (stable sort), so the result is deterministic.
    """
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1) for n in names])  # (N,)
    keep = round(density * flat.numel())
    order = torch.sort(flat, descending=True, stable=True).indices
    kept = torch.zeros_like(flat, dtype=torch.bool)
    kept[order[:keep]] = True
    masks, offset = {}, 0
    for n in names:
        size = scores[n].numel()
        masks[n] = kept[offset: offset + size].reshape(scores[n].shape)
        offset += size
    return masks


def prune_weights(model: MelHuBERT, masks: dict | None, density: float) -> dict[str, torch.Tensor]:
    """Prune `model` in place to `density` of its prunable weights; returns the new masks."""
    params = prunable_parameters(model)
    new_masks = select_global(magnitude_scores(params, masks), density)
    apply_masks(params, new_masks)
    return new_masks


def mask_density(masks: dict | None, model: MelHuBERT) -> float:
    """Kept fraction of the prunable entries (1.0 without masks)."""
    params = prunable_parameters(model)
    total = sum(p.numel() for p in params.values())
    if not masks:
        return 1.0
    kept = sum(int(masks[n].sum()) if n in masks else p.numel() for n, p in params.items())
    return kept / total


# -- the trajectory ------------------------------------------------------------------------------------------------
@holds_out_dir("weight")
def run_weight(teacher_path, feats, targets, out_dir, preset: str = "study", seed: int = 0,
               target_density: float | None = None, progress: bool = True, **overrides) -> list[dict]:
    """Weight-pruning trajectory from the teacher down the density schedule (resumable); returns its points.

    Point 0 is the teacher itself; point k has the k-th density of the schedule and its fine-tuned loss.
    """
    ctx, traj = open_run("weight", out_dir, teacher_path, feats, targets, preset, seed, overrides,
                         info={"density_of": DENSITY_OF}, progress=progress)
    start = mask_density(ctx.teacher_masks, ctx.teacher)  # below 1 for an already weight-pruned teacher
    reachable = [d for d in schedule_densities() if d < start - 1e-9]
    s = ctx.settings
    target = check_target(target_density, reachable, s.weight_min_density, "weight pruning")
    traj.info["target_density"] = target

    def measure(model, masks):
        return pruning_point(ctx, model, mask_density(masks, model))

    stages = [Stage("teacher", copy_previous, no_training, measure)]
    for k, density in enumerate(densities_until(reachable, target), start=1):
        stages.append(Stage(
            f"density {density:g}",
            prepare=_pruner(density),
            train=_fine_tuner(ctx, k),
            measure=measure,
            summarize=lambda log: {"converged": _converged(ctx, log)},
        ))
    return run_trajectory(traj, stages, start=(ctx.teacher, ctx.teacher_masks))


def _pruner(density: float):
    def prepare(previous):
        model, masks = previous
        model = unfrozen_copy(model)
        return model, prune_weights(model, masks, density), {"target_density": density}
    return prepare


def _fine_tuner(ctx, k: int):
    s = ctx.settings

    def fine_tune(model, masks, stage_dir):
        stop = EmaConvergence(s.weight_ema_decay, s.weight_ema_tolerance, s.weight_ema_window)
        return ctx.fine_tune(model, stage_dir, salt=k, steps=s.weight_max_steps, lr=s.finetune_lr, masks=masks,
                             stop_fn=stop, desc=f"weight pruning step {k}")
    return fine_tune


def _converged(ctx, log) -> bool:
    s = ctx.settings
    return bool(log) and EmaConvergence(s.weight_ema_decay, s.weight_ema_tolerance, s.weight_ema_window)(log)
