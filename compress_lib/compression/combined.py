"""The combined recipe (paper section V-D): distil, then prune heads, then prune FFN units.

    1. distil a 6-layer student from the teacher (or start from a student distilled before, `student_path`)
    2. head pruning in 2 steps to half the student's heads (paper: 72 -> 36)
    3. FFN pruning in 5 steps to 1/6 of the width (paper: 3072 -> 512)

Every pruning step is followed by the usual fine-tuning on the pretraining loss ("all hyperparameters remain
the same"). The density of a point is the parameter count of its Transformer layers relative to the teacher's.
"""

from __future__ import annotations

from compress_lib.compression.context import holds_out_dir, load_teacher, no_training, open_run
from compress_lib.compression.surgery import layer_parameters, unfrozen_copy
from compress_lib.compression.trajectory import Stage, run_trajectory
from compress_lib.compression.distill import distillation_stage, eval_distillation_loss, student_config
from compress_lib.compression.ffn import ffn_pruning_stage
from compress_lib.compression.heads import head_pruning_stage
from compress_lib.errors import CompressLibError
from compress_lib.files import file_sha256

DENSITY_OF = "parameters of the Transformer layers / the teacher's"


def split_evenly(total: int, steps: int) -> list[int]:
    """`total` removals in `steps` steps, as even as possible, larger steps first: (9, 2) -> [5, 4]."""
    steps = max(1, steps)
    return [total // steps + (1 if i < total % steps else 0) for i in range(steps)]


@holds_out_dir("combined")
def run_combined(teacher_path, feats, targets, out_dir, preset: str = "study", seed: int = 0,
                 student_path=None, progress: bool = True, **overrides) -> list[dict]:
    """The combined trajectory (resumable); point 0 is the distilled student, then one point per pruning step."""
    options = {}
    if student_path is not None:
        options["student_sha256"] = file_sha256(student_path)
    ctx, traj = open_run("combined", out_dir, teacher_path, feats, targets, preset, seed, overrides, options,
                         info={"density_of": DENSITY_OF}, progress=progress)
    s = ctx.settings
    teacher_params = layer_parameters(ctx.teacher)

    def measure(model, masks):
        losses = ctx.pretrain_loss(model)
        return {"density": layer_parameters(model) / teacher_params, "loss": losses["pretrain_loss"],
                "loss_name": "pretraining", "distill_loss": eval_distillation_loss(ctx, model), **losses}

    if student_path is None:
        layers = s.combined_layers
        if not 1 <= layers <= ctx.teacher.cfg.num_layers:
            raise CompressLibError(f"combined_layers {layers} is out of range; valid: 1..{ctx.teacher.cfg.num_layers}")
        first = distillation_stage(ctx, 0, layers, measure)
        student_cfg = None
    else:
        student, _ = load_teacher(student_path)
        if student.cfg.embed_dim != ctx.teacher.cfg.embed_dim or student.cfg.frame_ms != ctx.teacher.cfg.frame_ms:
            raise CompressLibError(f"{student_path} is not a student of this teacher (width or frame rate differs); "
                                   "pass a student distilled from --teacher")
        first = Stage("distilled student (given)", lambda previous: (unfrozen_copy(student), None, {}),
                      no_training, measure, from_previous=False)
        student_cfg = student.cfg
    stages = [first]

    cfg = student_cfg or student_config(ctx.teacher.cfg, s.combined_layers)
    heads0 = sum(cfg.layer_heads)
    for n in split_evenly(heads0 - round(heads0 * s.combined_head_density), s.combined_head_steps):
        stages.append(head_pruning_stage(ctx, len(stages), n, measure))
    width0 = max(cfg.layer_ffn_dims)
    for n in split_evenly(width0 - round(width0 * s.combined_ffn_density), s.combined_ffn_steps):
        stages.append(ffn_pruning_stage(ctx, len(stages), n, measure))
    return run_trajectory(traj, stages)

