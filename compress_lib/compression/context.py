"""What a compression run works with: the teacher, the data and the settings (`CompressionContext`), its
fine-tuning through the shared loop, the convergence rule of weight pruning, and `open_run`, which loads the
teacher and opens (or reopens) the trajectory folder. Structured pruning methods share
`run_pruning_trajectory`: point 0 is the teacher, then one pruning step per stage."""

from __future__ import annotations

import functools
import inspect
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from compress_lib.checkpoint import load_checkpoint
from compress_lib.errors import CompressLibError
from compress_lib.files import file_sha256
from compress_lib.locking import folder_lock
from compress_lib.model import MelHuBERT
from compress_lib.objective import CropBatcher, masked_prediction_loss, masked_prediction_metrics
from compress_lib.training import TrainConfig, step_seed, train, write_log_csv

from compress_lib.compression.presets import CompressSettings
from compress_lib.compression.surgery import apply_masks
from compress_lib.compression.trajectory import TEMP_FILES, Stage, Trajectory, copy_previous, run_trajectory

EVAL_RANK = 20_000  # batch stream of the evaluation batches: no training process draws it


# -- losses and fine-tuning ---------------------------------------------------------------------------------------
class EmaConvergence:
    """`stop_fn` for `training.train`: True once an exponential moving average of the loss has stopped changing.

    ema_t = decay * ema_{t-1} + (1 - decay) * loss_t (ema_1 = loss_1); converged when
    |ema_t - ema_{t-window}| < tolerance. A pure function of the log, so a resumed stage stops where an
    uninterrupted one would.
    """

    def __init__(self, decay: float, tolerance: float, window: int):
        self.decay, self.tolerance, self.window = decay, tolerance, window
        self.ema: list[float] = []

    def __call__(self, log: list[dict]) -> bool:
        if len(log) < len(self.ema):  # a new log: start over
            self.ema = []
        for row in log[len(self.ema):]:
            prev = self.ema[-1] if self.ema else row["loss"]
            self.ema.append(self.decay * prev + (1 - self.decay) * row["loss"])
        return len(self.ema) > self.window and abs(self.ema[-1] - self.ema[-1 - self.window]) < self.tolerance


@dataclass
class CompressionContext:
    """Everything a method needs besides its own knobs: the teacher, the data, the settings and the seed."""

    teacher: MelHuBERT  # eval mode, never trained
    teacher_masks: dict | None
    feats: list  # per-utterance (T_i, F) log-Mel
    targets: list  # per-utterance (T_i,) cluster labels: the teacher's pretraining targets
    settings: CompressSettings
    crop_frames: int  # frames per crop (the pretraining preset's)
    seed: int = 0
    progress: bool = True
    _eval: list | None = field(default=None, init=False, repr=False)

    def batcher(self, salt: int) -> CropBatcher:
        """Deterministic training batches for the stage identified by `salt`."""
        cfg = self.teacher.cfg
        return CropBatcher(self.feats, self.targets, self.crop_frames, self.settings.batch_size,
                           cfg.mask_prob, cfg.mask_length, seed=step_seed(self.seed, 0, salt=salt))

    def eval_batches(self) -> list:
        """The fixed batches on which every point is measured (the same for every method given the seed)."""
        if self._eval is None:
            b = self.batcher(salt=9_999)
            self._eval = [b(step=i, micro=0, rank=EVAL_RANK) for i in range(self.settings.eval_batches)]
        return self._eval

    def pretrain_loss(self, model: MelHuBERT) -> dict:
        """Masked-prediction loss and accuracy (eval mode) on the evaluation batches."""
        metrics = masked_prediction_metrics(model, self.eval_batches())
        return {"pretrain_loss": metrics["loss"], "pretrain_accuracy": metrics["accuracy"]}

    def pruning_fine_tuner(self, k: int, desc: str) -> Callable:
        """train() of structured pruning step k: fine-tune on the pretraining loss (settings.finetune_*)."""
        def fine_tune(model, masks, stage_dir):
            return self.fine_tune(model, stage_dir, salt=k, steps=self.settings.finetune_steps,
                                  lr=self.settings.finetune_lr, desc=desc)
        return fine_tune

    def fine_tune(self, model: MelHuBERT, stage_dir: Path, salt: int, steps: int, lr: float,
                  loss_fn: Callable | None = None, masks: dict | None = None, stop_fn=None,
                  warmup_steps: int = 0, desc: str = "fine-tune") -> list[dict]:
        """Train `model` in place for `steps` updates through the shared loop; resumable from stage_dir/state.pt.

        loss_fn(model, batch, step) -> (loss, metrics); default: the pretraining (masked-prediction) loss.
        masks: re-applied after every update (weight pruning). Returns the training log.
        """
        if steps <= 0:
            return []
        loss_fn = loss_fn or (lambda m, batch, step: masked_prediction_loss(m, batch))
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        after_step = None
        if masks:
            params = dict(model.named_parameters())
            after_step = lambda m, step: apply_masks(params, masks)  # noqa: E731
        lr_fn = None
        if warmup_steps:
            lr_fn = lambda step: lr * min(1.0, (step + 1) / warmup_steps)  # noqa: E731
        batcher = self.batcher(salt)
        log = train(model, optimizer, lambda step, micro: batcher(step, micro), loss_fn,
                    TrainConfig(total_steps=steps, seed=step_seed(self.seed, 0, salt=salt),
                                clip_norm=self.settings.clip_norm, save_every=self.settings.save_every, desc=desc),
                    state_path=stage_dir / "state.pt", lr_fn=lr_fn, after_step=after_step, stop_fn=stop_fn,
                    progress=self.progress)
        if log:
            write_log_csv(log, stage_dir / "log.csv")
        return log


def run_pruning_trajectory(ctx: "CompressionContext", traj: "Trajectory", what: str, size: Callable,
                           totals: list[int], default_density: float, target_density: float | None,
                           make_stage: Callable) -> list[dict]:
    """The trajectory of a structured pruning method: point 0 is the teacher, then one stage per step.

    size(model) -> int: what the method prunes (heads, FFN units); totals: the size after each possible step;
    make_stage(k, removed, measure) -> Stage: step k, removing `removed` of them.
    """
    size0 = size(ctx.teacher)
    reachable = [t / size0 for t in totals]
    target = check_target(target_density, reachable, default_density, what)
    traj.info["target_density"] = target

    def measure(model, masks):
        return pruning_point(ctx, model, size(model) / size0)

    sizes = [size0] + totals[: len(densities_until(reachable, target))]
    stages = [Stage("teacher", copy_previous, no_training, measure)]
    stages += [make_stage(k, sizes[k - 1] - sizes[k], measure) for k in range(1, len(sizes))]
    return run_trajectory(traj, stages, start=(ctx.teacher, None))


def no_training(model, masks, stage_dir) -> list[dict]:
    """train() of a stage that only records its model (the teacher point, truncation)."""
    return []


def pruning_point(ctx: CompressionContext, model: MelHuBERT, density: float) -> dict:
    """The measurements of a point of a pruning trajectory: its density and its pretraining loss."""
    losses = ctx.pretrain_loss(model)
    return {"density": density, "loss": losses["pretrain_loss"], "loss_name": "pretraining", **losses}


# -- opening a run -------------------------------------------------------------------------------------------------
def holds_out_dir(method: str):
    """Decorator of a `run_<method>(teacher_path, feats, targets, out_dir, ...)`: the run holds `out_dir`'s lock
    from start to end (a second run into the folder fails at once; see compress_lib.locking), and the temporary
    files a killed run left in the folder are deleted on start."""
    def decorate(run: Callable) -> Callable:
        signature = inspect.signature(run)

        @functools.wraps(run)
        def locked_run(*args, **kwargs):
            out_dir = signature.bind(*args, **kwargs).arguments["out_dir"]
            with folder_lock(out_dir, what=f"compress {method}", temp_files=TEMP_FILES):
                return run(*args, **kwargs)

        return locked_run

    return decorate


def open_run(method: str, out_dir, teacher_path, feats, targets, preset: str, seed: int = 0,
             overrides: dict | None = None, options: dict | None = None, info: dict | None = None,
             progress: bool = True) -> tuple[CompressionContext, Trajectory]:
    """Load the teacher, resolve the settings and open (or reopen) the trajectory in `out_dir`.

    overrides: CompressSettings fields replacing the preset's. options: method choices that change results
    (recorded; resuming with others is an error). info: recorded, not compared (e.g. the target density).
    Call it inside the folder's lock (the `run_<method>` functions hold it: `holds_out_dir`).
    """
    from compress_lib.compression.presets import compress_settings
    from compress_lib.pretrain import data_fingerprint, pretrain_settings

    settings = compress_settings(preset, **(overrides or {}))
    teacher, teacher_masks, teacher_meta = load_teacher_with_meta(teacher_path)
    fingerprint = data_fingerprint(feats)
    warn_if_other_data(teacher_path, teacher_meta, fingerprint)
    if teacher_masks and method != "weight":
        raise CompressLibError(f"{teacher_path} is a weight-pruned (masked) model; {method} needs an unmasked "
                               "teacher: pass the pretrained checkpoint")
    check_data(teacher, feats, targets)
    crop_frames = int(pretrain_settings(preset, teacher.cfg.frame_ms)["crop_frames"])
    ctx = CompressionContext(teacher, teacher_masks, feats, targets, settings, crop_frames, seed, progress)
    record = {
        "preset": preset, "seed": seed, "frame_ms": teacher.cfg.frame_ms, "crop_frames": crop_frames,
        "teacher_sha256": file_sha256(teacher_path), "data": fingerprint,
        **(options or {}), "compress_settings": settings.to_dict(),
    }
    traj = Trajectory(out_dir, method, record, info={"teacher": str(teacher_path), **(info or {})})
    return ctx, traj


def check_data(teacher: MelHuBERT, feats, targets) -> None:
    """The data must be the teacher's: same feature size, aligned targets of the teacher's codebook."""
    cfg = teacher.cfg
    if not feats:
        raise CompressLibError("no pretraining utterances were given; check --data")
    if feats[0].dim() != 2 or feats[0].shape[1] != cfg.feat_dim:
        raise CompressLibError(
            f"the features have shape {tuple(feats[0].shape)} but the teacher expects (frames, {cfg.feat_dim}) "
            f"({cfg.frame_ms} ms); pass the corpus the teacher was pretrained on"
        )
    if len(feats) != len(targets) or any(f.shape[0] != t.shape[0] for f, t in zip(feats, targets)):
        raise CompressLibError("the targets do not line up with the features; pass the teacher's own pretraining data")
    top = max(int(t.max()) for t in targets if t.numel())
    if top >= cfg.num_clusters:
        raise CompressLibError(
            f"target cluster {top} does not exist in the teacher's {cfg.num_clusters}-way head; "
            "pass the targets the teacher was trained on"
        )


# -- loading ------------------------------------------------------------------------------------------------------
def load_teacher(path) -> tuple[MelHuBERT, dict | None]:
    """The teacher in eval mode with its parameters frozen."""
    model, masks, _ = load_teacher_with_meta(path)
    return model, masks


def load_teacher_with_meta(path) -> tuple[MelHuBERT, dict | None, dict]:
    """`load_teacher`, and the checkpoint's metadata (e.g. the data fingerprint of its pretraining run)."""
    ckpt = load_checkpoint(path)
    for p in ckpt.model.parameters():
        p.requires_grad_(False)
    return ckpt.model, ckpt.masks, ckpt.meta


def warn_if_other_data(teacher_path, meta: dict, fingerprint: str) -> None:
    """One line on stderr when the data given differs from what the teacher was pretrained on (by the
    fingerprint its pretraining run recorded): compressing on another corpus is allowed, but rarely meant."""
    trained_on = (meta.get("run") or {}).get("data")
    if trained_on and trained_on != fingerprint:
        print(f"warning: the pretraining data given (--data) is not the corpus {teacher_path} was pretrained on "
              "(their fingerprints differ); pass the teacher's own corpus unless this is intended", file=sys.stderr)


def check_target(target: float | None, reachable: list[float], default: float, what: str) -> float:
    """The density a trajectory stops at: `target` if given, else `default`; out of range is an error.

    `reachable`: the densities the method's steps reach, in order (valid targets lie in [last, 1)).
    """
    if not reachable:
        raise CompressLibError(f"nothing left to prune for {what}: the teacher is already at its smallest")
    if target is None:
        return max(default, reachable[-1])
    if not math.isfinite(target) or not (reachable[-1] - 1e-9 <= target < 1.0):
        shown = ", ".join(f"{d:.4g}" for d in reachable)
        raise CompressLibError(f"target density {target} is out of range for {what}; valid: {shown}")
    return target


def densities_until(reachable: list[float], target: float) -> list[float]:
    """The prefix of `reachable` that ends at the first density <= target."""
    out = []
    for d in reachable:
        out.append(d)
        if d <= target + 1e-9:
            break
    return out
