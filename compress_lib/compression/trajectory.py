"""Resumable trajectories: the stages of a compression method, their points on disk, and their checks.

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

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from compress_lib.checkpoint import load_checkpoint, save_checkpoint
from compress_lib.errors import CompressLibError, check_same_settings
from compress_lib.files import file_sha256, write_text_atomic
from compress_lib.model import MelHuBERT

from compress_lib.compression.surgery import structure, unfrozen_copy

TRAJECTORY_FILE = "trajectory.json"
TEMP_FILES = (".*.tmp", "points/*/.*.tmp", "stages/*/.*.tmp")  # what atomic writes of a killed run leave behind


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
