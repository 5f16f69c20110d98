"""The compression methods of the study, each a small module: score -> select -> apply, and a `run_<method>`
driver that produces a resumable trajectory of checkpoints (see `trajectory.py` for the folder layout).

    weight    global magnitude pruning with masks along the paper's density schedule      weight.py
    heads     gradient-scored attention-head pruning, heads removed physically             heads.py
    ffn       FFN hidden-unit pruning (the paper's low-rank approximation)                 ffn.py
    distill   2- and 6-layer students trained on the teacher's cluster distributions       distill.py
    truncate  the teacher's first 2 / 6 layers, untrained (baselines)                      truncate.py
    combined  distil to 6 layers, prune heads to half, prune the FFN to 1/6                 combined.py

What they share: `context.py` (the teacher, data and settings of a run, fine-tuning, `open_run`), `surgery.py`
(slicing layers, masks, a model's structure and size), `trajectory.py` (stages, points on disk, resuming).
"""

from compress_lib.compression.combined import run_combined
from compress_lib.compression.surgery import slice_linear
from compress_lib.compression.trajectory import TRAJECTORY_FILE
from compress_lib.compression.distill import run_distill
from compress_lib.compression.ffn import run_ffn
from compress_lib.compression.heads import run_heads
from compress_lib.compression.presets import (
    COMPRESS_PRESETS, CompressSettings, compress_settings, parse_compress_overrides,
)
from compress_lib.compression.truncate import run_truncate
from compress_lib.compression.weight import run_weight

RUNNERS = {
    "weight": run_weight,
    "heads": run_heads,
    "ffn": run_ffn,
    "distill": run_distill,
    "truncate": run_truncate,
    "combined": run_combined,
}
METHODS = tuple(RUNNERS)

__all__ = [
    "COMPRESS_PRESETS", "CompressSettings", "METHODS", "RUNNERS", "TRAJECTORY_FILE", "compress_settings",
    "parse_compress_overrides",
    "load_trajectory", "run_combined", "run_distill", "run_ffn", "run_heads", "run_truncate", "run_weight",
    "slice_linear",
]


def load_trajectory(out_dir) -> dict:
    """The record of a trajectory folder: {"method", "settings", "points": [...], ...}."""
    import json
    from pathlib import Path

    from compress_lib.errors import CompressLibError

    path = Path(out_dir) / TRAJECTORY_FILE
    if not path.is_file():
        raise CompressLibError(f"{out_dir} holds no trajectory ({TRAJECTORY_FILE} missing); run `compress-lib compress`")
    return json.loads(path.read_text())
