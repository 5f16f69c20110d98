"""Helpers shared by the experiment notebooks in `notebooks/`: parameter checks, paths, results files, versions.

Every notebook has a papermill `parameters` cell with flat scalar defaults (at least `preset`, `frame_ms`,
`seed`, `data_dir`, `output_dir`). Right below it, `resolve_parameters(...)` checks them (one clear
`CompressLibError` per mistake) and resolves paths: relative paths are relative to the project root, whatever
directory the notebook runs in (papermill from the root, Jupyter from `notebooks/`, Binder from
`data/results/<preset>/`), and an empty `output_dir` means `data/results/<preset>/<notebook>`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from compress_lib.config import FRAME_MS_CHOICES
from compress_lib.errors import CompressLibError, check_choice
from compress_lib.files import RESULTS_DIR, display_path, resolve_path, write_text_atomic
from compress_lib.presets import check_preset

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


def check_number(name: str, value, minimum: float = 0, integer: bool = True, meaning: str = "",
                 above: bool = False):
    """A notebook parameter that must be a number (an integer when `integer`; True / False are neither) >= minimum
    (> minimum when `above`): returned, or one CompressLibError naming it, e.g. "processes must be an integer >= 0
    (0: the preset's), got 'two'"; `meaning` says what special values mean."""
    kind = "an integer" if integer else "a number"
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float)) and math.isfinite(value)
    if not ok or value < minimum or (above and value == minimum):
        bound = f"{'>' if above else '>='} {minimum:g}"
        raise CompressLibError(f"{name} must be {kind} {bound}{f' ({meaning})' if meaning else ''}, got {value!r}")
    return value


def check_text(name: str, value, what: str = "a path (a string)") -> str:
    """A notebook parameter that must be a string (a path, a comma-separated list): returned, or one error."""
    if not isinstance(value, str):
        raise CompressLibError(f"{name} must be {what}, got {value!r}")
    return value


def check_flag(name: str, value, default: bool | None = None) -> bool:
    """A notebook parameter that is True or False, or None for `default` (None: no default allowed)."""
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        allowed = "True, False or None (the preset's)" if default is not None else "True or False"
        raise CompressLibError(f"{name} must be {allowed}, got {value!r}")
    return value


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
    check_number("seed", seed)
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


def busy_machine_warning(sample_s: float = 1.0) -> str | None:
    """A warning when other processes compete for the CPU (timings then overstate the cost), else None: they used
    more than a quarter of the CPUs over the last `sample_s` seconds (`other_processes_cpu`)."""
    cpus = os.cpu_count() or 1
    busy = other_processes_cpu(sample_s)
    if busy > 0.25 * cpus:
        return (f"warning: the machine is busy (other processes used {busy:.1f} of {cpus} CPUs): "
                "timings overstate the cost; rerun on an idle machine for reliable real-time factors")
    return None


def other_processes_cpu(sample_s: float = 1.0) -> float:
    """How many CPUs other processes kept busy over the next `sample_s` seconds: the machine's busy time
    (/proc/stat) less this process's own, per second. Unlike the load average, which lags by a minute, it sees
    the machine as it is now: a timing notebook started right after two evaluation processes ended is not
    judged by them. Without /proc (not Linux): the 1-minute load average less one (this process)."""
    try:
        before, own_before = _machine_busy_s(), _own_cpu_s()
        time.sleep(sample_s)
        after, own_after = _machine_busy_s(), _own_cpu_s()
    except OSError:
        return max(0.0, os.getloadavg()[0] - 1.0)
    return max(0.0, (after - before) - (own_after - own_before)) / sample_s


def _machine_busy_s() -> float:
    """CPU-seconds all CPUs spent busy since boot (/proc/stat: user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()  # cpu user nice system idle iowait irq softirq steal ...
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


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
