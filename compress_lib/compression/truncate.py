"""Truncation baselines: the pretrained model cut after its first k layers, no training (paper: first 2, first 6).

The truncated model keeps the teacher's front-end, its first k layers and its cluster head (now reading
layer k, which it was not trained on: its pretraining loss is reported as measured, for what it is). Its
density is k / the teacher's depth, as for the distilled students it is compared with.
"""

from __future__ import annotations

from compress_lib.compression.context import holds_out_dir, no_training, open_run
from compress_lib.compression.trajectory import Stage, run_trajectory
from compress_lib.compression.distill import DENSITY_OF, check_depths, depth_point
from compress_lib.model import MelHuBERT


def truncate(model: MelHuBERT, num_layers: int) -> MelHuBERT:
    """A new model holding the first `num_layers` layers of `model` (same outputs as forward(num_layers=k))."""
    cfg = model.cfg.replace(layer_heads=model.cfg.layer_heads[:num_layers],
                            layer_ffn_dims=model.cfg.layer_ffn_dims[:num_layers])
    new = MelHuBERT(cfg)
    state = {k: v for k, v in model.state_dict().items()
             if not (k.startswith("layers.") and int(k.split(".")[1]) >= num_layers)}
    new.load_state_dict(state, strict=True)
    return new.eval()


@holds_out_dir("truncate")
def run_truncate(teacher_path, feats, targets, out_dir, preset: str = "study", seed: int = 0,
                 progress: bool = True, **overrides) -> list[dict]:
    """One truncated model per depth in settings.distill_layers; returns their points."""
    ctx, traj = open_run("truncate", out_dir, teacher_path, feats, targets, preset, seed, overrides,
                         info={"density_of": DENSITY_OF}, progress=progress)
    check_depths(ctx.settings.distill_layers, ctx.teacher.cfg.num_layers)

    def stage(num_layers: int) -> Stage:
        return Stage(f"first {num_layers} layers",
                     prepare=lambda previous: (truncate(ctx.teacher, num_layers), None, {"num_layers": num_layers}),
                     train=no_training,
                     measure=lambda model, masks: depth_point(ctx, model, "pretraining"),
                     from_previous=False)

    return run_trajectory(traj, [stage(k) for k in ctx.settings.distill_layers])
