"""Knowledge distillation into shallower students (paper sections III-E and IV-E).

    student  a MelHuBERT of the teacher's width with 2 or 6 layers, randomly initialised (default) or with
             the teacher's front-end and first layers copied (the paper's ablation)
    loss     (1/T) sum over frames t of KL[ p(c_t | x) || p_hat(c_t | x) ]          (paper eq. 6)
             p = softmax(teacher logits / tau), p_hat = softmax(student logits / tau), over all non-padded
             frames; the teacher sees unmasked input, the student too unless masked input is asked for
    train    Adam on the student only (paper: lr 1e-4); the teacher is frozen

Each student is one point of the trajectory; its density is its depth relative to the teacher's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from compress_lib.compression.context import CompressionContext, holds_out_dir, open_run
from compress_lib.compression.trajectory import Stage, run_trajectory
from compress_lib.config import MelHuBERTConfig
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT
from compress_lib.objective import Batch
from compress_lib.training import step_seed

DENSITY_OF = "Transformer layers of the model / the teacher's layers"
SHARED_FRONT_END = ("pre_extract_proj", "pos_conv", "layer_norm")


# -- student ----------------------------------------------------------------------------------------------------------
def student_config(teacher_cfg: MelHuBERTConfig, num_layers: int) -> MelHuBERTConfig:
    """The teacher's width (its largest head count and FFN width) with `num_layers` layers."""
    return teacher_cfg.replace(layer_heads=[max(teacher_cfg.layer_heads)] * num_layers,
                               layer_ffn_dims=[max(teacher_cfg.layer_ffn_dims)] * num_layers)


def make_student(teacher: MelHuBERT, num_layers: int, init: str = "random", seed: int = 0) -> MelHuBERT:
    """A student of `num_layers` layers; init "teacher" copies the front-end and the teacher's first layers."""
    torch.manual_seed(step_seed(seed, 0, salt=3_000 + num_layers))
    student = MelHuBERT(student_config(teacher.cfg, num_layers))
    if init == "teacher":
        if num_layers > teacher.cfg.num_layers:
            raise CompressLibError(f"a {num_layers}-layer student cannot copy the layers of a "
                                   f"{teacher.cfg.num_layers}-layer teacher; use --init random")
        for name in SHARED_FRONT_END:
            getattr(student, name).load_state_dict(getattr(teacher, name).state_dict())
        for i in range(num_layers):
            try:
                student.layers[i].load_state_dict(teacher.layers[i].state_dict())
            except RuntimeError:
                raise CompressLibError(f"teacher layer {i} was pruned to another shape; initialise the student "
                                       "randomly (--init random)") from None
    return student


# -- loss ---------------------------------------------------------------------------------------------------------------
def distillation_loss(student: MelHuBERT, teacher: MelHuBERT, batch: Batch, temperature: float = 1.0,
                      masked_input: bool = False) -> tuple[torch.Tensor, dict]:
    """Mean over non-padded frames of KL(p_teacher || p_student) at `temperature` (eq. 6); the teacher runs
    without gradients (and must be in eval mode)."""
    with torch.no_grad():
        teacher_logits = teacher(batch.feats, padding_mask=batch.padding_mask).logits  # (B, T, K)
    frame_mask = batch.frame_mask if masked_input else None
    student_logits = student(batch.feats, padding_mask=batch.padding_mask, frame_mask=frame_mask).logits
    keep = ~batch.padding_mask  # (B, T)
    log_p = F.log_softmax(teacher_logits[keep] / temperature, dim=-1)  # (N, K)
    log_q = F.log_softmax(student_logits[keep] / temperature, dim=-1)
    kl = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)  # sum_c p (log p - log q), mean over N
    return kl, {}


@torch.no_grad()
def eval_distillation_loss(ctx: CompressionContext, student: MelHuBERT) -> float:
    """The distillation loss (eval mode, unmasked input) on the evaluation batches."""
    was_training = student.training
    student.eval()
    t = ctx.settings.distill_temperature
    losses = [float(distillation_loss(student, ctx.teacher, b, t)[0]) for b in ctx.eval_batches()]
    student.train(was_training)
    return sum(losses) / len(losses)


def depth_point(ctx: CompressionContext, model: MelHuBERT, loss_name: str) -> dict:
    """Measurements of a shallower model: density = depth / teacher depth, both losses."""
    distill = eval_distillation_loss(ctx, model)
    losses = ctx.pretrain_loss(model)
    loss = distill if loss_name == "distillation" else losses["pretrain_loss"]
    return {"density": model.cfg.num_layers / ctx.teacher.cfg.num_layers, "loss": loss, "loss_name": loss_name,
            "distill_loss": distill, **losses}


# -- stage and trajectory ------------------------------------------------------------------------------------------
STUDENT_SALT = 100  # a student's training batches depend on its depth alone, not on which other depths are distilled


def distillation_stage(ctx: CompressionContext, k: int, num_layers: int, measure) -> Stage:
    """Stage k: build and train a `num_layers`-layer student from the teacher."""
    s = ctx.settings

    def prepare(previous):
        student = make_student(ctx.teacher, num_layers, s.distill_init, ctx.seed)
        return student, None, {"num_layers": num_layers, "init": s.distill_init,
                               "masked_input": s.distill_masked_input, "temperature": s.distill_temperature}

    def loss_fn(student, batch, step):
        return distillation_loss(student, ctx.teacher, batch, s.distill_temperature, s.distill_masked_input)

    def train(model, masks, stage_dir):  # batches by depth: an ablation student sees the plain student's batches
        return ctx.fine_tune(model, stage_dir, salt=STUDENT_SALT + num_layers, steps=s.distill_steps,
                             lr=s.distill_lr, loss_fn=loss_fn,
                             warmup_steps=s.distill_warmup_steps, desc=f"distilling {num_layers} layers")

    return Stage(f"{num_layers}-layer student", prepare, train, measure, from_previous=False)


@holds_out_dir("distill")
def run_distill(teacher_path, feats, targets, out_dir, preset: str = "study", seed: int = 0,
                progress: bool = True, **overrides) -> list[dict]:
    """One distilled student per depth in settings.distill_layers (resumable); returns their points."""
    ctx, traj = open_run("distill", out_dir, teacher_path, feats, targets, preset, seed, overrides,
                         info={"density_of": DENSITY_OF}, progress=progress)
    s = ctx.settings
    check_depths(s.distill_layers, ctx.teacher.cfg.num_layers)

    def measure(model, masks):
        return depth_point(ctx, model, "distillation")

    stages = [distillation_stage(ctx, k, layers, measure) for k, layers in enumerate(s.distill_layers)]
    return run_trajectory(traj, stages)


def check_depths(depths, teacher_layers: int) -> None:
    """Every student depth is between 1 and the teacher's depth."""
    bad = [k for k in depths if not 1 <= k <= teacher_layers]
    if bad:
        raise CompressLibError(f"layer counts {bad} are out of range; valid: 1..{teacher_layers}")


def parse_depths(text, name: str = "layers") -> tuple[int, ...]:
    """'2,6' -> (2, 6), sorted and without repeats: student depths as the command line (`--layers`) and notebook 06
    (`layers`) take them; one CompressLibError naming `name` otherwise (`check_depths` checks the range)."""
    try:
        depths = tuple(sorted({int(x) for x in str(text).split(",") if x.strip()}))
    except ValueError:
        raise CompressLibError(f"{name} {text!r} is not a comma-separated list of layer counts, e.g. 2,6") from None
    if not depths:
        raise CompressLibError(f"{name} is empty; give the student depths, e.g. 2,6")
    return depths
