"""Helpers shared by the experiment notebooks in `notebooks/`: parameter checks, paths, results files, versions.

Every notebook has a papermill `parameters` cell with flat scalar defaults (at least `preset`, `frame_ms`,
`seed`, `data_dir`, `output_dir`). Right below it, `resolve_parameters(...)` checks them (one clear
`CompressLibError` per mistake) and resolves paths: relative paths are relative to the project root, whatever
directory the notebook runs in (papermill from the root, Jupyter from `notebooks/`, Binder from
`data/results/<preset>/`), and an empty `output_dir` means `data/results/<preset>/<notebook>`.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from compress_lib.config import FRAME_MS_CHOICES
from compress_lib.errors import CompressLibError, check_choice
from compress_lib.files import write_text_atomic
from compress_lib.presets import check_preset

RESULTS_DIR = "data/results"  # relative to the project root: data/results/<preset>/<notebook>/


def project_root() -> Path:
    """The repository root (holds pyproject.toml) for a source checkout, else the current directory."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def resolve_path(path: str | os.PathLike) -> Path:
    """An absolute path; a relative one is taken relative to the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def display_path(path: str | os.PathLike) -> str:
    """`path` relative to the project root when inside it (results stay machine independent), else absolute."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(project_root().resolve()))
    except ValueError:
        return str(p)


@dataclass(frozen=True)
class RunParameters:
    """The checked common parameters of one notebook run (paths relative to the project root when possible)."""

    notebook: str
    preset: str
    frame_ms: int
    seed: int
    data_dir: str
    output_dir: str

    @property
    def output_path(self) -> Path:
        return resolve_path(self.output_dir)

    @property
    def data_path(self) -> Path:
        return resolve_path(self.data_dir)

    def to_dict(self) -> dict:
        return asdict(self)


INJECTED_HEADER = "# Parameters"  # the first line of the cell papermill injects after the `parameters` cell


def assigned_names(source: str) -> list[str]:
    """The names a cell assigns at its top level (`x = 1`, `x: int = 1`), in order."""
    import ast

    names = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def unknown_injected_parameters(history: list[str]) -> tuple[list[str], list[str]]:
    """(unknown, declared): the names papermill injected that the notebook's `parameters` cell does not declare,
    and those it declares, from the kernel's input history (papermill runs the injected cell right after the
    parameters cell). Both empty when no parameters were injected (the notebook runs in plain Jupyter)."""
    for k in range(len(history) - 1, 0, -1):
        if history[k].lstrip().startswith(INJECTED_HEADER):
            declared = assigned_names(history[k - 1])
            return [n for n in assigned_names(history[k]) if n not in declared], declared
    return [], []


def check_injected_parameters(notebook: str) -> None:
    """Under papermill, refuse a parameter the notebook does not declare: papermill itself only warns ("Passed
    unknown parameter") and runs on without it, so a misspelt `-p` would silently change nothing."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    unknown, declared = unknown_injected_parameters(list(shell.user_ns.get("In") or []))
    if unknown:
        raise CompressLibError(f"{notebook} has no parameter {', '.join(map(repr, unknown))}; its parameters are "
                               f"{', '.join(declared)} (papermill -p NAME VALUE)")


def resolve_parameters(
    notebook: str, preset: str, frame_ms: int, seed: int, data_dir: str, output_dir: str
) -> RunParameters:
    """Check a notebook's common parameters and resolve its paths; creates `output_dir`.

    Raises `CompressLibError` naming the bad parameter and its valid values, and (under papermill) one naming a
    parameter the notebook does not have.
    """
    check_injected_parameters(notebook)
    check_preset(preset)
    if isinstance(frame_ms, bool) or not isinstance(frame_ms, int):
        raise CompressLibError(f"frame_ms must be an integer, one of {FRAME_MS_CHOICES}; got {frame_ms!r}")
    check_choice(frame_ms, FRAME_MS_CHOICES, "frame rate frame_ms (ms)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise CompressLibError(f"seed must be an integer >= 0; got {seed!r}")
    if not isinstance(data_dir, str) or not isinstance(output_dir, str):
        raise CompressLibError("data_dir and output_dir must be strings: paths, relative ones to the project root")
    out = resolve_path(output_dir) if output_dir else resolve_path(f"{RESULTS_DIR}/{preset}/{notebook}")
    if out.exists() and not out.is_dir():
        raise CompressLibError(f"output_dir {out} exists and is not a directory; pass another -p output_dir")
    out.mkdir(parents=True, exist_ok=True)
    data = resolve_path(data_dir) if data_dir else resolve_path("work/corpus")
    return RunParameters(notebook, preset, frame_ms, seed, display_path(data), display_path(out))


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write `obj` as indented, key-sorted JSON, atomically (a crash never leaves half a file)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def busy_machine_warning() -> str | None:
    """A warning when other processes compete for the CPU (timings then overstate the cost), else None."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.75 * cpus:
        return (f"warning: the machine is busy (load average {load:.1f} on {cpus} CPUs): "
                "timings overstate the cost; rerun on an idle machine for reliable real-time factors")
    return None


def environment_versions() -> dict:
    """Versions and machine facts worth recording beside every result."""
    import numpy
    import plotly
    import torch

    import compress_lib

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "plotly": plotly.__version__,
        "compress_lib": compress_lib.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),  # > cpu_count: other work competed for the CPU
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
