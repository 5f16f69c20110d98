"""What the compression notebooks (notebooks/03..07) share: their folders, the corpus and teacher they start
from, and each trajectory as a table, a figure and a results file.

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
    trajectory_table(out_dir, work_dir) -> DataFrame     one row per point of DIR/trajectory.json
    training_log(out_dir) -> DataFrame                   every stage's training log, steps counted along
    loss_density_figure(table, title, references) -> Figure
    cost_figure(table, title, measures, detail) -> Figure    parameters / MACs against density
    layer_heatmap(table, column, title, unit) -> Figure   heads / FFN units per layer at every point

The folder layout is that of notebooks/02_pretrain.md and tools/run_study.py: corpus in `data_dir`, teachers in
<work_dir>/pretrain-<rate>ms, trajectories in <work_dir>/<method>-<rate>ms, results in `output_dir`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from compress_lib import figure_style
from compress_lib.config import FRAME_MS_CHOICES
from compress_lib.errors import CompressLibError
from compress_lib.files import write_text_atomic
from compress_lib.notebook import RunParameters, display_path, project_root, resolve_parameters, resolve_path
from compress_lib.presets import PRESET_NAMES, check_preset, study_scale

CORPUS_SCALE = {name: study_scale(name).corpus_scale for name in PRESET_NAMES}  # the corpus of each preset
CORPUS_SEED = 0  # the study's corpus
FRAME_RATE_COLOURS = {10: "#636efa", 20: "#ef553b"}  # as notebooks/09_efficiency.md


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
    import torch

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise CompressLibError(f"threads must be an integer >= 0 (0: the preset's default), got {threads!r}")
    if threads or study_scale(preset).one_thread:
        torch.set_num_threads(threads or 1)
    return torch.get_num_threads()


# -- corpus and teacher --------------------------------------------------------------------------------------------
def ensure_corpus(data_dir, preset: str, jobs: int | None = None, progress: bool = True) -> dict:
    """The corpus in `data_dir`: a complete one is used as it is (any scale, generated or converted); otherwise
    the preset's stand-in corpus is generated there (resumable; see `compress_lib.data.generate`)."""
    from compress_lib.data.generate import corpus_is_complete, generate_corpus, read_corpus_info

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
    from compress_lib.checkpoint import load_checkpoint
    from compress_lib.pretrain import pretrain, pretrain_settings

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
    from compress_lib.pretrain import load_pretraining_data

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


# -- trajectories --------------------------------------------------------------------------------------------------
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
    from compress_lib.compression import compress_settings

    defaults = compress_settings(preset)
    changed = compress_settings(preset, **overrides)
    parts = [f"{name}-{_name_part(getattr(changed, name))}" for name in sorted(overrides)
             if getattr(changed, name) != getattr(defaults, name)]
    return Path(work_dir) / "-".join([method, f"{frame_ms}ms", *parts])


def teacher_reference(teacher_path, feats, targets, preset: str, seed: int = 0) -> dict:
    """The teacher measured exactly like every point of a trajectory: its pretraining loss and accuracy on the
    same fixed evaluation batches, and its structure (parameters, MACs per second, ...)."""
    from compress_lib.compression import compress_settings
    from compress_lib.compression.context import CompressionContext, load_teacher
    from compress_lib.compression.surgery import structure
    from compress_lib.pretrain import pretrain_settings

    teacher, masks = load_teacher(teacher_path)
    crop_frames = int(pretrain_settings(preset, teacher.cfg.frame_ms)["crop_frames"])
    ctx = CompressionContext(teacher, masks, feats, targets, compress_settings(preset), crop_frames, seed,
                             progress=False)
    return {"frame_ms": teacher.cfg.frame_ms, **ctx.pretrain_loss(teacher), "structure": structure(teacher, masks)}


def _joined(values) -> str:
    return " ".join(map(str, values))


def trajectory_table(out_dir, work_dir=None) -> pd.DataFrame:
    """One row per point of the trajectory in `out_dir`: what it is, its losses, size, cost and checkpoint.

    Columns: method, frame_ms, point, stage, density, loss (the loss the method trains on), loss_name,
    pretrain_loss, pretrain_accuracy, distill_loss (distillation, combined; else empty), train_loss, layers,
    heads, ffn_units, layer_heads / layer_ffn_dims (space-separated, per layer), params, nonzero_params,
    layer_params, macs_per_second, stage_steps, steps, stage_elapsed_s, elapsed_s, converged (weight
    pruning; else empty) and checkpoint (relative to `work_dir` when given, else to `out_dir`).
    """
    from compress_lib.compression import load_trajectory

    out_dir = Path(out_dir)
    record = load_trajectory(out_dir)
    base = Path(work_dir) if work_dir is not None else out_dir
    rows = []
    for p in record["points"]:
        s = p["structure"]
        rows.append({
            "method": record["method"], "frame_ms": record["settings"]["frame_ms"], "point": p["index"],
            "stage": p["stage"], "density": p["density"], "loss": p["loss"], "loss_name": p["loss_name"],
            "pretrain_loss": p["pretrain_loss"], "pretrain_accuracy": p["pretrain_accuracy"],
            "distill_loss": p.get("distill_loss"), "train_loss": p["train_loss"],
            "layers": s["num_layers"], "heads": sum(s["layer_heads"]), "ffn_units": sum(s["layer_ffn_dims"]),
            "layer_heads": _joined(s["layer_heads"]), "layer_ffn_dims": _joined(s["layer_ffn_dims"]),
            "params": s["parameters"], "nonzero_params": s["nonzero_parameters"],
            "layer_params": s["layer_parameters"], "macs_per_second": s["macs_per_second"],
            "stage_steps": p["stage_steps"], "steps": p["steps"], "stage_elapsed_s": p["stage_elapsed_s"],
            "elapsed_s": p["elapsed_s"], "converged": p.get("converged"),
            "checkpoint": os.path.relpath(out_dir / p["checkpoint"], base),
        })
    return pd.DataFrame(rows)


def training_log(out_dir) -> pd.DataFrame:
    """The training logs of every recorded stage (DIR/stages/<k>/log.csv) with their point `point` and
    `total_step`: the step counted from the start of the trajectory (stage k starts where point k-1 ended)."""
    from compress_lib.compression import load_trajectory

    points = load_trajectory(out_dir)["points"]
    frames = []
    for p in points:
        log = Path(out_dir) / "stages" / str(p["index"]) / "log.csv"
        if p["stage_steps"] and log.is_file():
            rows = pd.read_csv(log)
            rows.insert(0, "point", p["index"])
            rows.insert(1, "total_step", rows["step"] + p["steps"] - p["stage_steps"])
            frames.append(rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["point", "total_step", "step"])


def write_table(table: pd.DataFrame, path) -> Path:
    """Write a results table as CSV, atomically (a crash never leaves half a file)."""
    return write_text_atomic(path, table.to_csv(index=False))


# -- figures -------------------------------------------------------------------------------------------------------
HOVER_COLUMNS = ("stage", "density", "pretrain_loss", "params", "nonzero_params", "macs_per_second")


def point_hover(y_label: str) -> str:
    """Hover text of a trajectory point (customdata in HOVER_COLUMNS order)."""
    return ("%{customdata[0]}<br>density: %{customdata[1]:.4f}<br>" + y_label + ": %{y:.4f}"
            "<br>pretraining loss: %{customdata[2]:.4f}<br>parameters: %{customdata[3]:,}"
            "<br>non-zero parameters: %{customdata[4]:,}<br>MACs per second: %{customdata[5]:,}"
            "<extra>%{fullData.name}</extra>")


DASHES = ("solid", "dot", "dash", "dashdot", "longdash", "longdashdot")  # one per variant of a figure
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x")  # likewise, for the markers


def loss_density_figure(table: pd.DataFrame, title: str, y: str = "pretrain_loss", references: dict | None = None,
                        y_label: str = "pretraining loss (nats)", density_label: str = "density") -> go.Figure:
    """`y` against density, one line per method (its colour, `compress_lib.figure_style`) and frame rate (solid
    20 ms, dotted 10 ms) and, when `table` has a `variant` column, per variant (its own marker shape); density
    falls from left to right as compression proceeds. Hover shows each point's stage, density, losses, parameters
    and MACs. references: {label: value} drawn as dashed grey lines (e.g. the teacher)."""
    key = "variant" if "variant" in table else "method"
    fig = go.Figure()
    for (variant, rate), rows in table.groupby([key, "frame_ms"], sort=False):
        method = rows["method"].iloc[0]
        # a method's first variant (its main trajectory) keeps the method's marker; its ablations get their own
        order = list(dict.fromkeys(table.loc[table["method"] == method, key]))
        k = order.index(variant)
        symbol = figure_style.VARIANT_SYMBOLS[(k - 1) % len(figure_style.VARIANT_SYMBOLS)] if k else None
        fig.add_scatter(x=rows["density"], y=rows[y], mode="lines+markers",
                        name=f"{variant}, {rate} ms" if key == "variant" else figure_style.label(method, rate),
                        line=figure_style.line(method, rate), marker=figure_style.marker(method, rate, symbol=symbol),
                        customdata=rows[list(HOVER_COLUMNS)].values, hovertemplate=point_hover(y_label))
    for i, (label, value) in enumerate((references or {}).items()):
        fig.add_hline(y=value, line=dict(dash="dash", color=figure_style.REFERENCE_COLOUR, width=1),
                      annotation_text=label, annotation_position="top left" if i % 2 else "bottom left")
    fig.update_xaxes(title_text=density_label, autorange="reversed")
    fig.update_yaxes(title_text=y_label)
    fig.update_layout(title=title, height=460, template="plotly_white", margin=dict(l=60, r=20, t=60, b=40))
    figure_style.legend_below(fig, y=-0.2)
    return fig


def cost_figure(table: pd.DataFrame, title: str, measures: dict[str, str], detail: tuple[str, str]) -> go.Figure:
    """One panel per measure ({column: panel title}) against density, stacked, one line per method and frame
    rate; hover shows each point's value and its `detail` (column, label), e.g. ("heads", "heads left")."""
    from plotly.subplots import make_subplots

    column, label = detail
    fig = make_subplots(rows=len(measures), cols=1, subplot_titles=list(measures.values()), vertical_spacing=0.12)
    for (method, rate), rows in table.groupby(["method", "frame_ms"], sort=False):
        for row, key in enumerate(measures, start=1):
            fig.add_scatter(x=rows["density"], y=rows[key], mode="lines+markers",
                            name=figure_style.label(method, rate), line=figure_style.line(method, rate),
                            marker=figure_style.marker(method, rate), showlegend=row == 1,
                            legendgroup=f"{method}{rate}", customdata=rows[[column]].values, row=row, col=1,
                            hovertemplate=f"density %{{x:.4f}}<br>{measures[key]}: %{{y:,}}<br>{label}: "
                                          f"%{{customdata[0]:,}}<extra>{rate} ms</extra>")
    fig.update_xaxes(autorange="reversed")
    fig.update_xaxes(title_text="density", row=len(measures), col=1)
    fig.update_layout(title=title, height=240 * len(measures) + 140, template="plotly_white",
                      margin=dict(l=70, r=20, t=70, b=40))
    figure_style.legend_below(fig, y=-0.12)
    return fig


def layer_heatmap(table: pd.DataFrame, column: str, title: str, unit: str, colorscale: str = "Blues") -> go.Figure:
    """Per frame rate, a heatmap of a per-layer structure column ("layer_heads", "layer_ffn_dims"): one row per
    point, top to bottom as compression proceeds, one column per layer, each cell its count of `unit`."""
    from plotly.subplots import make_subplots

    rates = sorted(table["frame_ms"].unique())
    fig = make_subplots(rows=1, cols=len(rates), subplot_titles=[f"{r} ms" for r in rates], shared_yaxes=True)
    for col, rate in enumerate(rates, start=1):
        rows = table[table["frame_ms"] == rate]
        z = [[int(v) for v in s.split()] for s in rows[column]]  # (points, layers)
        fig.add_heatmap(z=z, x=[f"layer {i + 1}" for i in range(len(z[0]))], y=rows["point"], zmin=0,
                        zmax=max(max(r) for r in z), colorscale=colorscale, showscale=col == 1,
                        colorbar=dict(title=unit), text=z, texttemplate="%{text}", row=1, col=col,
                        hovertemplate=f"point %{{y}}, %{{x}}: %{{z}} {unit}<extra>{rate} ms</extra>")
    fig.update_yaxes(title_text="point", autorange="reversed", row=1, col=1)
    fig.update_layout(title=title, height=max(300, 60 + 40 * int(table["point"].max())),
                      margin=dict(l=60, r=20, t=80, b=40))
    return fig


def summary_record(study: StudyParameters, versions: dict, **extra) -> dict:
    """The summary a notebook writes beside its tables: its resolved parameters, the versions, and `extra`."""
    return {"parameters": study.to_dict(), "versions": versions, **extra}


__all__ = [
    "CORPUS_SCALE", "DASHES", "FRAME_RATE_COLOURS", "SYMBOLS", "StudyParameters", "Teacher", "check_density",
    "check_pretrain_folder", "checked_work_dir", "cost_figure", "default_data_dir", "ensure_corpus", "ensure_teacher",
    "layer_heatmap", "loss_density_figure", "method_dir", "parse_frame_rates", "prepare_teachers", "pretrain_dir",
    "resolve_study", "summary_record", "teacher_reference", "teacher_table", "training_log", "trajectory_table",
    "use_threads", "write_table",
]
