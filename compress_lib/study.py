"""What every experiment notebook sets up first: its parameters (checked in one place), the corpus, and the
pretrained teacher of each frame rate.

    resolve_study(notebook, preset, frame_ms, frame_rates, seed, data_dir, work_dir, output_dir) -> StudyParameters
    use_threads(threads, preset) -> int                  PyTorch's CPU threads (0: 1 at smoke, else the default)
    ensure_corpus(data_dir, preset) -> dict              reuse a complete corpus, else generate the preset's
    ensure_teacher(data_dir, work_dir, preset, frame_ms, seed) -> Path
                                                         <work_dir>/pretrain-<rate>ms/model.pt (resumable)
    prepare_teachers(study) -> {rate: Teacher}           both of the above for every frame rate, data loaded
    method_dir(work_dir, method, frame_ms, preset, **overrides) -> Path
                                                         <work_dir>/<method>-<rate>ms, variants named apart
    teacher_reference(teacher_path, feats, targets, preset, seed) -> dict
                                                         the teacher measured like every point of a trajectory
    summary_record(study, versions, **extra) -> dict     the summary a notebook writes beside its tables

A compression notebook's trajectory becomes tables and figures in `compress_lib.trajectory_results`. The folder
layout is that of notebooks/02_pretrain.md and tools/run_study.py: corpus in `data_dir`, teachers in
<work_dir>/pretrain-<rate>ms, trajectories in <work_dir>/<method>-<rate>ms, results in `output_dir`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from compress_lib.checkpoint import load_checkpoint
from compress_lib.compression import compress_settings
from compress_lib.compression.context import CompressionContext, load_teacher
from compress_lib.compression.surgery import structure
from compress_lib.config import FRAME_MS_CHOICES
from compress_lib.data.generate import corpus_is_complete, generate_corpus, read_corpus_info
from compress_lib.errors import CompressLibError
from compress_lib.files import display_path, project_root, resolve_path
from compress_lib.notebook import RunParameters, check_number, resolve_parameters
from compress_lib.presets import PRESET_NAMES, check_preset, study_scale
from compress_lib.pretrain import load_pretraining_data, pretrain, pretrain_settings

CORPUS_SCALE = {name: study_scale(name).corpus_scale for name in PRESET_NAMES}  # the corpus of each preset
CORPUS_SEED = 0  # the study's corpus
# the frame rates' colours of the committed study page of notebook 09, which drew its own figures before
# compress_lib.figure_style (tests/test_committed_notebooks.py reruns that page); the next full run replaces it
FRAME_RATE_COLOURS = {10: "#636efa", 20: "#ef553b"}


# -- parameters ----------------------------------------------------------------------------------------------------
def default_data_dir(preset: str) -> str:
    """The corpus folder of a preset: work/corpus at full scale, work/corpus-<scale> otherwise."""
    scale = study_scale(preset).corpus_scale
    return "work/corpus" if scale == 1 else f"work/corpus-{scale:g}"


def parse_frame_rates(text, fallback, name: str = "frame_rates") -> list[int]:
    """'10,20' -> [10, 20]; '' -> the fallback (a rate or a list of rates). Raises CompressLibError naming
    the parameter `name` and the valid rates."""
    if not isinstance(text, str):
        text = str(text)  # papermill passes -p frame_rates 20 as an integer
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        return [fallback] if isinstance(fallback, int) else list(fallback)
    valid = ", ".join(map(str, FRAME_MS_CHOICES))
    if not all(p.isdigit() and int(p) in FRAME_MS_CHOICES for p in parts):
        raise CompressLibError(f"{name} must list frame rates in ms from {valid}, comma-separated; got {text!r}")
    if len(set(parts)) != len(parts):
        raise CompressLibError(f"{name} lists a rate twice: {text!r}")
    return [int(p) for p in parts]


def checked_work_dir(path, preset: str) -> Path:
    """The work folder for checkpoints (empty: work/<preset>); never under data/, which holds committed results."""
    if not isinstance(path, str):
        raise CompressLibError(f"work_dir must be a path (a string), got {path!r}")
    work = resolve_path(path or f"work/{preset}")
    if work.resolve().is_relative_to((project_root() / "data").resolve()):
        raise CompressLibError(f"work_dir {work} is under data/, which holds committed results only; the "
                               "checkpoints are large: pass a folder such as work/<preset> or /tmp/work")
    if work.exists() and not work.is_dir():
        raise CompressLibError(f"work_dir {work} exists and is not a directory; pass another -p work_dir")
    return work


@dataclass(frozen=True)
class StudyParameters:
    """The checked parameters a compression notebook shares: the common ones, its frame rates and work folder."""

    run: RunParameters
    frame_rates: tuple[int, ...]
    work_dir: str  # relative to the project root when inside it

    @property
    def work_path(self) -> Path:
        return resolve_path(self.work_dir)

    def to_dict(self) -> dict:
        return {**self.run.to_dict(), "frame_rates": list(self.frame_rates), "work_dir": self.work_dir}


def resolve_study(notebook: str, preset: str, frame_ms: int, frame_rates, seed: int, data_dir: str, work_dir: str,
                  output_dir: str) -> StudyParameters:
    """Check a compression notebook's common parameters (one CompressLibError per mistake); creates output_dir."""
    check_preset(preset)
    run = resolve_parameters(notebook, preset, frame_ms, seed, data_dir or default_data_dir(preset), output_dir)
    rates = tuple(parse_frame_rates(frame_rates, run.frame_ms))
    work = checked_work_dir(work_dir, run.preset)
    return StudyParameters(run, rates, display_path(work))


def check_density(value, name: str = "target_density") -> float | None:
    """A target density in (0, 1), or None for 0 (the preset's end point)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise CompressLibError(f"{name} must be a number in [0, 1) (0: the preset's end point), got {value!r}")
    return float(value) or None


def use_threads(threads, preset: str) -> int:
    """Set PyTorch's CPU threads: `threads`, or for 0 one thread at a preset of tiny models (smoke: they run
    several times faster on one thread of a busy machine than on two) and PyTorch's default otherwise.
    Returns the number in use."""
    check_number("threads", threads, meaning="0: the preset's default")
    if threads or study_scale(preset).one_thread:
        torch.set_num_threads(threads or 1)
    return torch.get_num_threads()


# -- corpus and teacher --------------------------------------------------------------------------------------------
def ensure_corpus(data_dir, preset: str, jobs: int | None = None, progress: bool = True) -> dict:
    """The corpus in `data_dir`: a complete one is used as it is (any scale, generated or converted); otherwise
    the preset's stand-in corpus is generated there (resumable; see `compress_lib.data.generate`)."""
    data = Path(data_dir)
    info = read_corpus_info(data)
    if info and corpus_is_complete(data, info):
        return info
    if info and info.get("kind") not in (None, "generated"):
        raise CompressLibError(f"{data} holds an incomplete {info.get('kind')} corpus; convert it again "
                               "(`compress-lib corpus --from-...`) or pass another -p data_dir")
    return generate_corpus(data, scale=study_scale(preset).corpus_scale, seed=CORPUS_SEED,
                           jobs=jobs or os.cpu_count() or 1, progress=progress)


def pretrain_dir(work_dir, frame_ms: int, overrides: dict | None = None) -> Path:
    """Where the teacher of a frame rate is pretrained (the layout of notebooks/02_pretrain.md): changed settings
    name the folder apart (pretrain-20ms-stage1_steps-200), so that they never resume another run."""
    parts = [f"{name}-{_name_part(value)}" for name, value in sorted((overrides or {}).items())]
    return Path(work_dir) / "-".join([f"pretrain-{frame_ms}ms", *parts])


def check_pretrain_folder(run_dir, preset: str, seed: int) -> None:
    """Raise if `run_dir` holds a pretraining run of another preset or seed (resuming it would mix two runs)."""
    settings = Path(run_dir) / "stage1" / "settings.json"
    if not settings.is_file():
        return
    started = json.loads(settings.read_text())
    if (started.get("preset"), started.get("seed")) != (preset, seed):
        raise CompressLibError(
            f"{display_path(run_dir)} holds a run of preset {started.get('preset')!r}, seed {started.get('seed')}, "
            f"not preset {preset!r}, seed {seed}; pass another -p work_dir (or the run's own preset and seed)")


def ensure_teacher(data_dir, work_dir, preset: str, frame_ms: int, seed: int, progress: bool = True) -> Path:
    """The pretrained teacher of a frame rate: <work_dir>/pretrain-<rate>ms/model.pt, trained if missing.

    `pretrain` skips finished stages and resumes an interrupted one, so this returns in seconds once the
    pretraining notebook has run.
    """
    run_dir = pretrain_dir(work_dir, frame_ms)
    check_pretrain_folder(run_dir, preset, seed)
    final, summary = run_dir / "model.pt", run_dir / "pretrain.json"
    if final.is_file() and summary.is_file():  # finished: read only, so notebooks run side by side never contend
        if json.loads(summary.read_text()).get("final_stage") == pretrain_settings(preset, frame_ms)["stages"][-1]:
            try:
                load_checkpoint(final)
                return final
            except Exception:  # noqa: BLE001  damaged: pretrain() below writes it again from its last stage
                pass
    return pretrain(data_dir, run_dir, preset=preset, frame_ms=frame_ms, seed=seed, progress=progress)


@dataclass(frozen=True)
class Teacher:
    """A pretrained teacher with the data it was trained on, as every compression runner takes it."""

    frame_ms: int
    path: Path  # <work_dir>/pretrain-<rate>ms/model.pt
    feats: list  # per utterance (T_i, F) log-Mel frames of the pretraining split
    targets: list  # per utterance (T_i,) cluster labels the teacher was last trained on
    reference: dict  # teacher_reference(): its pretraining loss on the evaluation batches, its structure


def prepare_teachers(study: StudyParameters, progress: bool = True) -> dict[int, Teacher]:
    """For every frame rate of the study: make sure the corpus and the teacher exist (generating / pretraining
    what is missing, resumably), load the teacher's pretraining data and measure the teacher."""
    run = study.run
    ensure_corpus(run.data_path, run.preset, progress=progress)
    teachers = {}
    for rate in study.frame_rates:
        path = ensure_teacher(run.data_path, study.work_path, run.preset, rate, run.seed, progress=progress)
        feats, targets = load_pretraining_data(run.data_path, path)
        reference = teacher_reference(path, feats, targets, run.preset, run.seed)
        teachers[rate] = Teacher(rate, path, feats, targets, reference)
    return teachers


def teacher_table(teachers: dict[int, Teacher], work_dir=None) -> pd.DataFrame:
    """One row per teacher: its checkpoint (relative to `work_dir` when given), loss, accuracy and size."""
    rows = []
    for rate, t in teachers.items():
        s = t.reference["structure"]
        rows.append({
            "frame_ms": rate, "pretrain_loss": t.reference["pretrain_loss"],
            "pretrain_accuracy": t.reference["pretrain_accuracy"], "layers": s["num_layers"],
            "heads": sum(s["layer_heads"]), "ffn_units": sum(s["layer_ffn_dims"]), "params": s["parameters"],
            "macs_per_second": s["macs_per_second"],
            "checkpoint": os.path.relpath(t.path, work_dir) if work_dir is not None else str(t.path),
        })
    return pd.DataFrame(rows).set_index("frame_ms")


# -- folders of trajectories -------------------------------------------------------------------------------------
def _name_part(value) -> str:
    if isinstance(value, (tuple, list)):
        return "_".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def method_dir(work_dir, method: str, frame_ms: int, preset: str, **overrides) -> Path:
    """<work_dir>/<method>-<rate>ms for the preset's settings. Overrides that change a setting name the folder
    apart (e.g. heads-20ms-head_score-l1), so that runs of other settings never meet in one folder (a
    trajectory folder refuses to resume with other settings). Raises CompressLibError for a bad setting."""
    defaults = compress_settings(preset)
    changed = compress_settings(preset, **overrides)
    parts = [f"{name}-{_name_part(getattr(changed, name))}" for name in sorted(overrides)
             if getattr(changed, name) != getattr(defaults, name)]
    return Path(work_dir) / "-".join([method, f"{frame_ms}ms", *parts])


def teacher_reference(teacher_path, feats, targets, preset: str, seed: int = 0) -> dict:
    """The teacher measured exactly like every point of a trajectory: its pretraining loss and accuracy on the
    same fixed evaluation batches, and its structure (parameters, MACs per second, ...)."""
    teacher, masks = load_teacher(teacher_path)
    crop_frames = int(pretrain_settings(preset, teacher.cfg.frame_ms)["crop_frames"])
    ctx = CompressionContext(teacher, masks, feats, targets, compress_settings(preset), crop_frames, seed,
                             progress=False)
    return {"frame_ms": teacher.cfg.frame_ms, **ctx.pretrain_loss(teacher), "structure": structure(teacher, masks)}


def summary_record(study: StudyParameters, versions: dict, **extra) -> dict:
    """The summary a notebook writes beside its tables: its resolved parameters, the versions, and `extra`."""
    return {"parameters": study.to_dict(), "versions": versions, **extra}
