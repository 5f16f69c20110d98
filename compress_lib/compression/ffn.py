"""Low-rank approximation as FFN hidden-unit pruning, physically (paper sections III-D and IV-D).

    score   per layer, unit i of the FFN: s_i = L1(FC1 row i) + |FC1 bias i| + L1(FC2 column i)
    select  per layer, the `n` lowest-scoring units (paper: 128 of 3072 per step, 3072 -> 512 in 20 steps)
    apply   slice the units' rows out of FC1 (weights and bias) and their columns out of FC2; fine-tune

A layer may end with zero units: its FFN block then adds only FC2's bias.
"""

from __future__ import annotations

import torch

from compress_lib.compression.context import CompressionContext, holds_out_dir, open_run, run_pruning_trajectory
from compress_lib.compression.surgery import slice_linear, unfrozen_copy
from compress_lib.compression.trajectory import Stage
from compress_lib.config import MelHuBERTConfig
from compress_lib.model import MelHuBERT

DENSITY_OF = "FFN hidden units left / the teacher's units (all layers)"


# -- score -> select -> apply ---------------------------------------------------------------------------------------
def ffn_unit_scores(model: MelHuBERT) -> list[torch.Tensor]:
    """Per layer, (F_l,): L1 of FC1's row i (weight (F, D)) + |FC1 bias i| + L1 of FC2's column i (weight (D, F))."""
    scores = []
    for layer in model.layers:
        fc1, fc2 = layer.fc1.weight.detach(), layer.fc2.weight.detach()
        scores.append(fc1.abs().sum(1) + layer.fc1.bias.detach().abs() + fc2.abs().sum(0))
    return scores


def select_units(scores: list[torch.Tensor], n: int) -> dict[int, list[int]]:
    """Per layer, the `n` lowest-scoring units (all of them if fewer are left): {layer: [unit indices]}."""
    remove = {}
    for layer, s in enumerate(scores):
        if s.numel() == 0:
            continue
        order = torch.sort(s, stable=True).indices  # ties: the lower index goes first
        remove[layer] = sorted(order[: min(n, s.numel())].tolist())
    return remove


def prune_ffn(model: MelHuBERT, remove: dict[int, list[int]]) -> MelHuBERTConfig:
    """Remove FFN units physically; returns (and sets) the model's new config with the new `layer_ffn_dims`."""
    for layer_idx, units in remove.items():
        layer = model.layers[layer_idx]
        gone = set(units)
        keep = torch.tensor([i for i in range(layer.fc1.out_features) if i not in gone], dtype=torch.long)
        layer.fc1 = slice_linear(layer.fc1, 0, keep)  # (F', D)
        layer.fc2 = slice_linear(layer.fc2, 1, keep)  # (D, F')
    model.cfg = model.cfg.replace(layer_ffn_dims=[layer.fc1.out_features for layer in model.layers])
    return model.cfg


# -- policy ---------------------------------------------------------------------------------------------------------
def ffn_totals(layer_ffn_dims: list[int], per_step: int) -> list[int]:
    """Total FFN units left after each step (each layer loses min(per_step, what it has)) until none are left."""
    widths, totals = list(layer_ffn_dims), []
    while sum(widths) > 0 and per_step > 0:
        widths = [max(0, w - per_step) for w in widths]
        totals.append(sum(widths))
    return totals


def ffn_pruning_stage(ctx: CompressionContext, k: int, n: int, measure) -> Stage:
    """Stage k: remove the `n` lowest-scoring units of every layer of the previous point's model, fine-tune."""
    def prepare(previous):
        model = unfrozen_copy(previous[0])
        remove = select_units(ffn_unit_scores(model), n)
        prune_ffn(model, remove)
        return model, None, {"units_removed_per_layer": n}

    return Stage(f"remove {n} FFN units per layer", prepare, ctx.pruning_fine_tuner(k, f"FFN pruning step {k}"),
                 measure)


# -- the trajectory ------------------------------------------------------------------------------------------------
@holds_out_dir("ffn")
def run_ffn(teacher_path, feats, targets, out_dir, preset: str = "study", seed: int = 0,
            target_density: float | None = None, progress: bool = True, **overrides) -> list[dict]:
    """FFN-pruning trajectory from the teacher (resumable); returns its points (point 0: the teacher)."""
    ctx, traj = open_run("ffn", out_dir, teacher_path, feats, targets, preset, seed, overrides,
                         info={"density_of": DENSITY_OF}, progress=progress)
    s = ctx.settings
    dims = ctx.teacher.cfg.layer_ffn_dims
    per_step = max(1, round(s.ffn_units_per_step * max(dims)))
    traj.info["units_per_step"] = per_step
    return run_pruning_trajectory(
        ctx, traj, "FFN pruning", size=lambda model: sum(model.cfg.layer_ffn_dims),
        totals=ffn_totals(dims, per_step), default_density=s.ffn_min_density, target_density=target_density,
        make_stage=lambda k, removed, measure: ffn_pruning_stage(ctx, k, per_step, measure))
