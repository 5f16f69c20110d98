"""What every compression method shares: slicing layers, fine-tuning, and resumable trajectories.

A trajectory is a list of *stages*. Stage k builds its starting model (prune the model of point k - 1, or build
a student), trains it through the shared loop (`training.train`), and records point k:

    DIR/trajectory.json          settings + one entry per point: density, losses, steps, seconds, structure
    DIR/points/<k>/model.pt      the checkpoint of point k (weight pruning: with its binary masks)
    DIR/stages/<k>/start.pt      stage k's model right after pruning (deleted once point k is recorded)
    DIR/stages/<k>/state.pt      stage k's resumable training state (deleted once point k is recorded)
    DIR/stages/<k>/log.csv       stage k's training log (loss per step)

Each point of trajectory.json holds: index, stage (what was done), density (what it is relative to: the
record's `density_of`), loss and loss_name (the loss the method trains on), pretrain_loss / pretrain_accuracy
(masked prediction on fixed evaluation batches, the same for every method), distill_loss (distillation and the
combined recipe), train_loss (mean of the stage's last 20 training steps), stage_steps / steps (training
updates of the stage / since the start of the trajectory), stage_elapsed_s / elapsed_s (seconds, summed over
interrupted runs), structure (layer_heads, layer_ffn_dims, parameters, nonzero_parameters, macs_per_second,
...), what the method decided (removed heads and their scores, target density, convergence, ...) and
checkpoint (relative to DIR), checkpoint_sha256 and checkpoint_bytes (of the file as written).

Rerunning the same command first verifies every recorded point's checkpoint (present, of the recorded size and
SHA-256; a record older than those fields: loadable). The first missing or damaged point and every point after
it are dropped and computed again from the last good one, bit-identically (same seeds, same batches). It then
skips recorded points, reloads a pruned-but-untrained stage from `start.pt` and resumes its training from
`state.pt`; the results equal those of an uninterrupted run.

A run holds its folder: `run_<method>` functions are wrapped in `holds_out_dir`, which takes the folder's lock
(`compress_lib.locking`) for the whole run, so two runs into one folder never mix their points.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from compress_lib.checkpoint import load_checkpoint, save_checkpoint
from compress_lib.errors import CompressLibError, check_same_settings
from compress_lib.files import file_sha256, write_text_atomic
from compress_lib.locking import folder_lock
from compress_lib.model import MelHuBERT
from compress_lib.objective import CropBatcher, masked_prediction_loss
from compress_lib.training import TrainConfig, step_seed, train, write_log_csv

from compress_lib.compression.presets import CompressSettings

TRAJECTORY_FILE = "trajectory.json"
TEMP_FILES = (".*.tmp", "points/*/.*.tmp", "stages/*/.*.tmp")  # what atomic writes of a killed run leave behind
EVAL_RANK = 20_000  # batch stream of the evaluation batches: no training process draws it


# -- slicing -------------------------------------------------------------------------------------------------------
def slice_linear(linear: nn.Linear, dim: int, keep_idx) -> nn.Linear:
    """A new Linear that keeps only the features `keep_idx` along `dim`.

    dim 0 keeps output features (rows of the weight, entries of the bias); dim 1 keeps input features (columns
    of the weight; the bias is unchanged). An empty `keep_idx` gives a zero-size layer.
    Shapes: weight (out, in) -> (len(keep), in) for dim 0, (out, len(keep)) for dim 1.
    """
    if dim not in (0, 1):
        raise ValueError(f"dim must be 0 (outputs) or 1 (inputs), found {dim}")
    keep_idx = torch.as_tensor(keep_idx, dtype=torch.long).reshape(-1)
    weight = linear.weight.detach().index_select(dim, keep_idx).clone()
    bias = None
    if linear.bias is not None:
        bias = linear.bias.detach()[keep_idx].clone() if dim == 0 else linear.bias.detach().clone()
    with warnings.catch_warnings():  # a zero-size layer warns that there is nothing to initialise
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")  # no init
    new.weight = nn.Parameter(weight)
    if bias is not None:
        new.bias = nn.Parameter(bias)
    return new


def head_feature_index(heads, head_dim: int) -> torch.Tensor:
    """Feature indices of the given heads in a q/k/v output (or out_proj input): head h owns [h*hd, (h+1)*hd)."""
    heads = torch.as_tensor(list(heads), dtype=torch.long)
    return (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).reshape(-1)


# -- model description ---------------------------------------------------------------------------------------------
def masked_count(masks: dict | None, prefix: str = "") -> int:
    """Number of masked-out (zero) entries among the masks whose parameter name starts with `prefix`."""
    if not masks:
        return 0
    return sum(int((~m).sum()) for name, m in masks.items() if name.startswith(prefix))


def layer_parameters(model: MelHuBERT, masks: dict | None = None) -> int:
    """Parameters of the Transformer layers, masked entries not counted (the part compression acts on)."""
    return sum(p.numel() for p in model.layers.parameters()) - masked_count(masks, "layers.")


def structure(model: MelHuBERT, masks: dict | None = None) -> dict:
    """The shape of a model and its size: parameters (without the cluster head), their non-zero count (masked
    weights not counted) and MACs per second of speech in closed form (masked weights not counted)."""
    from compress_lib.efficiency import closed_form_macs_per_second, count_parameters

    cfg = model.cfg
    counts = count_parameters(model, masks)
    return {
        "num_layers": cfg.num_layers,
        "embed_dim": cfg.embed_dim,
        "layer_heads": list(cfg.layer_heads),
        "layer_ffn_dims": list(cfg.layer_ffn_dims),
        "parameters": counts["params"],
        "nonzero_parameters": counts["nonzero"],
        "layer_parameters": layer_parameters(model, masks),
        "macs_per_second": closed_form_macs_per_second(model, masks),
    }


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

    @torch.no_grad()
    def pretrain_loss(self, model: MelHuBERT) -> dict:
        """Masked-prediction loss and accuracy (eval mode) on the evaluation batches."""
        was_training = model.training
        model.eval()
        losses, accs = [], []
        for batch in self.eval_batches():
            loss, metrics = masked_prediction_loss(model, batch)
            losses.append(float(loss))
            accs.append(metrics["accuracy"])
        model.train(was_training)
        return {"pretrain_loss": sum(losses) / len(losses), "pretrain_accuracy": sum(accs) / len(accs)}

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


@torch.no_grad()
def apply_masks(params: dict, masks: dict) -> None:
    """Zero the masked-out entries: param *= mask for every masked parameter."""
    for name, mask in masks.items():
        params[name].mul_(mask)


# -- trajectories -------------------------------------------------------------------------------------------------
@dataclass
class Stage:
    """One point of a trajectory.

    prepare(previous) -> (model, masks, info): the stage's starting model; `previous` is the (model, masks) of
        the point before (None for the first stage). It must not modify `previous`.
    train(model, masks, stage_dir) -> log: trains the model in place (resumably); may do nothing.
    measure(model, masks) -> dict: the point's density and losses.
    summarize(log) -> dict: optional extra fields about the training (e.g. whether it converged).
    """

    name: str
    prepare: Callable
    train: Callable
    measure: Callable
    summarize: Callable | None = None
    from_previous: bool = True  # False: prepare() gets None (a student built from the teacher alone)


def copy_previous(previous):
    """prepare() of a first stage that starts from the model handed in (deep copy)."""
    model, masks = previous
    return unfrozen_copy(model), (None if masks is None else {k: v.clone() for k, v in masks.items()}), {}


class Trajectory:
    """The points recorded in DIR/trajectory.json, and where each point's and stage's files live."""

    def __init__(self, out_dir, method: str, settings: dict, info: dict | None = None):
        self.dir = Path(out_dir)
        self.path = self.dir / TRAJECTORY_FILE
        self.method = method
        self.settings = json.loads(json.dumps(settings))  # as it reads back from JSON
        self.info = info or {}
        self.points: list[dict] = []
        if self.path.is_file():
            try:
                old = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                raise CompressLibError(f"{self.path} is damaged; delete {self.dir} and rerun") from None
            check_same_settings({"method": old.get("method"), **old.get("settings", {})},
                                {"method": method, **self.settings},
                                f"{self.dir} holds a {old.get('method')!r} trajectory made with other settings",
                                "rerun with the original options or use a fresh --out folder")
            self.points = old["points"]

    def stage_dir(self, k: int) -> Path:
        return self.dir / "stages" / str(k)

    def checkpoint_path(self, k: int) -> Path:
        return self.dir / self.points[k]["checkpoint"]

    def load_point(self, k: int):
        ckpt = load_checkpoint(self.checkpoint_path(k))
        return ckpt.model, ckpt.masks

    def add_point(self, k: int, model: MelHuBERT, masks: dict | None, point: dict) -> dict:
        """Write point k's checkpoint and record the point (with the file's size and SHA-256)."""
        rel = Path("points") / str(k) / "model.pt"
        point = {"index": k, **point, "checkpoint": str(rel)}
        path = self.dir / rel
        save_checkpoint(path, model, masks, method=self.method, **_meta_safe(point))
        point.update(checkpoint_sha256=file_sha256(path), checkpoint_bytes=path.stat().st_size)
        self.points = self.points[:k] + [point]
        self.save()
        return point

    def first_damaged_point(self) -> tuple[int, str] | None:
        """(index, what is wrong) of the first recorded point whose checkpoint cannot be trusted; None if all are
        sound (see `checkpoint_problem`)."""
        for k, point in enumerate(self.points):
            problem = checkpoint_problem(self.dir / point["checkpoint"], point)
            if problem:
                return k, problem
        return None

    def drop_points_from(self, k: int) -> None:
        """Forget points k, k+1, ...: their checkpoints and the scratch files of their stages (all derived from
        the forgotten points) are deleted, so that the next run computes them again."""
        for point in self.points[k:]:
            (self.dir / point["checkpoint"]).unlink(missing_ok=True)
        stages = self.dir / "stages"
        for stage_dir in (stages.iterdir() if stages.is_dir() else []):
            if stage_dir.name.isdigit() and int(stage_dir.name) >= k:
                _clean_stage(stage_dir)
        self.points = self.points[:k]
        self.save()

    def save(self) -> None:
        record = {"method": self.method, "settings": self.settings, **self.info, "points": self.points}
        write_text_atomic(self.path, json.dumps(record, indent=1))


def run_trajectory(traj: Trajectory, stages: list[Stage], start=None) -> list[dict]:
    """Run (or resume) the stages in order; returns all points. `start`: the (model, masks) stage 0 prepares from.

    Recorded points whose checkpoint is missing or damaged are computed again first (`forget_damaged_points`).
    """
    forget_damaged_points(traj)
    for k, stage in enumerate(stages):
        stage_dir = traj.stage_dir(k)
        if k < len(traj.points):
            _clean_stage(stage_dir)
            continue
        t0 = time.perf_counter()
        start_path = stage_dir / "start.pt"
        ckpt = _load_stage_start(start_path)
        if ckpt is not None:
            model, masks, info, prepare_s = ckpt.model, ckpt.masks, ckpt.meta["info"], ckpt.meta["prepare_s"]
        else:
            previous = (traj.load_point(k - 1) if k > 0 else start) if stage.from_previous else None
            model, masks, info = stage.prepare(previous)
            prepare_s = time.perf_counter() - t0
            save_checkpoint(start_path, model, masks, info=info, prepare_s=prepare_s)
        log = stage.train(model, masks, stage_dir)
        train_s = log[-1]["elapsed_s"] if log else 0.0
        t1 = time.perf_counter()
        model.eval()
        point = {"stage": stage.name, **stage.measure(model, masks)}
        measure_s = time.perf_counter() - t1
        stage_steps = log[-1]["step"] if log else 0
        before = traj.points[k - 1] if k > 0 else {"steps": 0, "elapsed_s": 0.0}
        point.update(
            train_loss=_tail_mean(log, "loss"),
            stage_steps=stage_steps,
            steps=before["steps"] + stage_steps,
            stage_elapsed_s=round(prepare_s + train_s + measure_s, 3),
            elapsed_s=round(before["elapsed_s"] + prepare_s + train_s + measure_s, 3),
            structure=structure(model, masks),
            **info,
            **(stage.summarize(log) if stage.summarize else {}),
        )
        traj.add_point(k, model, masks, point)
        _clean_stage(stage_dir)
    return traj.points


def forget_damaged_points(traj: Trajectory) -> None:
    """Drop the first recorded point whose checkpoint is missing or damaged and every point after it (they were
    computed from it), with a one-line note; the run then computes them again from the last good point."""
    damaged = traj.first_damaged_point()
    if damaged is None:
        return
    k, problem = damaged
    last = len(traj.points) - 1
    which = f"point {k}" if k == last else f"points {k}-{last}"
    source = f"point {k - 1}" if k > 0 else "the start"
    print(f"note: {traj.checkpoint_path(k)} {problem}; computing {which} of {traj.dir} again from {source}",
          file=sys.stderr)
    traj.drop_points_from(k)


def checkpoint_problem(path: Path, point: dict, sha256: str | None = None) -> str | None:
    """What is wrong with a point's checkpoint file, as a phrase ("is missing", ...); None when it is the file
    the point recorded: same size and SHA-256 (`sha256`: the file's, if already computed), or, for a point
    recorded before those were kept, a checkpoint that loads."""
    path = Path(path)
    if not path.is_file():
        return "is missing"
    size, recorded = point.get("checkpoint_bytes"), point.get("checkpoint_sha256")
    if size is not None and path.stat().st_size != size:
        return f"has {path.stat().st_size} bytes where {size} were written (damaged)"
    if recorded is not None:
        return None if (sha256 or file_sha256(path)) == recorded else "differs from the file that was written (SHA-256)"
    try:
        load_checkpoint(path)
    except CompressLibError:
        return "is damaged (it does not load)"
    return None


def _load_stage_start(path: Path):
    """A stage's pruned-but-untrained model (its checkpoint), or None when there is none or it is damaged (then it
    is deleted, with a note, and the stage is prepared again)."""
    if not path.is_file():
        return None
    try:
        return load_checkpoint(path)
    except CompressLibError:
        print(f"note: {path} is damaged; preparing the stage again", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None


def _clean_stage(stage_dir: Path) -> None:
    """A recorded point replaces its stage's model and training state (the log stays)."""
    for name in ("start.pt", "state.pt"):
        (stage_dir / name).unlink(missing_ok=True)


def _tail_mean(log: list[dict], key: str, n: int = 20) -> float | None:
    rows = [r[key] for r in log[-n:] if key in r]
    return sum(rows) / len(rows) if rows else None


def _meta_safe(d: dict) -> dict:
    return json.loads(json.dumps(d))




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


def unfrozen_copy(model: MelHuBERT) -> MelHuBERT:
    """A trainable deep copy of a (frozen) model."""
    new = copy.deepcopy(model)
    for p in new.parameters():
        p.requires_grad_(True)
    return new


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


# -- checking a point from outside (evaluation) --------------------------------------------------------------------
def trajectory_point_of(path) -> tuple[Path, int] | None:
    """(trajectory folder, point index) when `path` is DIR/points/<k>/model.pt beside a DIR/trajectory.json."""
    path = Path(path).absolute()
    if path.name != "model.pt" or path.parent.parent.name != "points" or not path.parent.name.isdigit():
        return None
    traj_dir = path.parent.parent.parent
    return (traj_dir, int(path.parent.name)) if (traj_dir / TRAJECTORY_FILE).is_file() else None


def rebuild_command(traj_dir) -> str:
    """The command that reruns the trajectory in `traj_dir` (and so rebuilds its missing or damaged points)."""
    try:
        record = json.loads((Path(traj_dir) / TRAJECTORY_FILE).read_text())
    except (OSError, ValueError):
        record = {}
    settings = record.get("settings", {})
    parts = ["compress-lib compress", str(record.get("method", "METHOD")), "--teacher",
             str(record.get("teacher", "TEACHER")), "--preset", str(settings.get("preset", "PRESET")),
             "--out", str(traj_dir)]
    if settings.get("seed"):
        parts += ["--seed", str(settings["seed"])]
    return " ".join(parts)


def check_trajectory_point(path, sha256: str | None = None) -> None:
    """For a recorded point of a trajectory (DIR/points/<k>/model.pt): an error naming the command that rebuilds
    it when the file is missing or is not the one the trajectory recorded. Other paths pass unchecked.

    sha256: the file's SHA-256 when the caller has already computed it.
    """
    located = trajectory_point_of(path)
    if located is None:
        return
    traj_dir, k = located
    try:
        points = json.loads((traj_dir / TRAJECTORY_FILE).read_text()).get("points", [])
    except (OSError, ValueError):
        return  # a damaged trajectory.json: the compress command itself reports it
    point = next((p for p in points if p.get("index") == k), None)
    if point is None:
        return
    problem = checkpoint_problem(path, point, sha256)
    if problem:
        raise CompressLibError(
            f"{path} {problem}; rerun `{rebuild_command(traj_dir)}` with the options it was started with: it "
            "rebuilds missing and damaged points"
        )
