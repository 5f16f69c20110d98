"""The study's results table: `data/results/<preset>/summary.csv`, one row per evaluated model.

Rows are keyed by (model, frame_ms). Each column has one writer in the study (`COLUMN_WRITERS`): the downstream
notebook (08) writes a model's row (identity, size, pretraining loss, PER, SID accuracy) and the efficiency
notebook (09) alone its real-time factor, from one interleaved timing pass over every model. Outside the study,
`compress-lib evaluate` writes the same cells for the one model it evaluates, its real-time factor included
(timed on its own; `--no-profile` leaves the size and time out). Updating a row
merges the given values into it (a value of None leaves the cell as it is); the file is rewritten atomically
under a lock, so concurrent evaluations never lose each other's cells. `drop_summary_rows` removes the rows an
earlier run left behind that the current one no longer evaluates; `summary_frame` gives the table as a DataFrame
with its numbers as numbers.

Columns (empty where not applicable):
    model             name of the model (unique per frame rate); an evaluation truncated to other than the
                      checkpoint's own depth (`evaluate --num-layers k`) is its own model, named
                      "<name> (first k layers)" (`downstream.upstream.truncated_model_name`), so it never
                      replaces the full model's row
    method            dense, weight, heads, ffn, distill, truncate, combined, fbank, random-init, zoo, ...
    density           fraction of the prunable amount left (1 for the dense model)
    frame_ms          10 or 20
    params            parameters of the upstream (without the pretraining head)
    nonzero_params    parameters that are not masked to zero
    macs_per_second   multiply-accumulates per second of speech
    real_time_factor  seconds of compute per second of speech
    per               phone error rate on pr-test, in percent
    sid_accuracy      speaker-ID accuracy on sid-test, in percent
    pretrain_loss     masked-prediction loss of the model
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
from contextlib import contextmanager
from pathlib import Path

from compress_lib.errors import CompressLibError
from compress_lib.files import RESULTS_DIR, project_root, write_text_atomic
from compress_lib.presets import check_preset

SUMMARY_COLUMNS = (
    "model", "method", "density", "frame_ms", "params", "nonzero_params", "macs_per_second", "real_time_factor",
    "per", "sid_accuracy", "pretrain_loss",
)  # fmt: skip
KEY_COLUMNS = ("model", "frame_ms")
# column -> the step of the study that writes it (the deployment notebook, 14, keeps its own table)
COLUMN_WRITERS = {
    **dict.fromkeys(("model", "method", "density", "frame_ms"), "08_downstream"),
    **dict.fromkeys(("params", "nonzero_params", "macs_per_second"), "08_downstream (model sizes)"),
    "real_time_factor": "09_efficiency (one interleaved timing pass)",
    "per": "08_downstream (phone recognition probe)",
    "sid_accuracy": "08_downstream (speaker-ID probe)",
    "pretrain_loss": "08_downstream (from the trajectory of notebooks 02-07)",
}
NUMERIC_COLUMNS = tuple(c for c in SUMMARY_COLUMNS if c not in ("model", "method"))


def summary_path(preset: str, results_dir: str | os.PathLike | None = None) -> Path:
    """`<results_dir>/<preset>/summary.csv`; results_dir defaults to data/results of the project."""
    root = Path(results_dir) if results_dir is not None else project_root() / RESULTS_DIR
    return root / check_preset(preset) / "summary.csv"


def read_summary(path: str | os.PathLike) -> list[dict[str, str]]:
    """All rows (cells as strings, "" where empty); an absent file has none."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return [{c: row.get(c) or "" for c in SUMMARY_COLUMNS} for row in reader]


def summary_frame(rows):
    """Rows of the table (`read_summary`'s list, or a DataFrame) as a pandas DataFrame with exactly
    SUMMARY_COLUMNS, the numeric ones as numbers ("" and junk cells NaN)."""
    import pandas as pd

    columns = list(SUMMARY_COLUMNS)  # a list of rows, even an empty one, keeps text columns (merges need them)
    if isinstance(rows, pd.DataFrame):
        table = rows.reindex(columns=columns)
    else:
        table = pd.DataFrame(list(rows), columns=columns)
    table[list(NUMERIC_COLUMNS)] = table[list(NUMERIC_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    return table


def check_summary_table(path: str | os.PathLike, fix: str = "") -> None:
    """Refuse a summary.csv that is not one (rewriting it would lose what it holds), naming the file; `fix` adds
    a caller's own way out (e.g. "pass --no-summary")."""
    path = Path(path)
    also = f", or {fix}" if fix else ""
    if path.is_dir():
        raise CompressLibError(f"summary table {path} is a folder: move it aside{also}")
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error):
        header = []
    if not set(KEY_COLUMNS) <= set(header):
        raise CompressLibError(f"summary table {path} is not a compress_lib summary (its first line lacks the "
                               f"columns {', '.join(KEY_COLUMNS)}): move it aside or delete it (a new one is "
                               f"started){also}")


def update_summary(path: str | os.PathLike, row: dict) -> dict[str, str]:
    """Insert or update the row with the same (model, frame_ms); returns the row as written.

    Values of None leave existing cells unchanged; unknown column names are an error.
    """
    unknown = set(row) - set(SUMMARY_COLUMNS)
    if unknown:
        raise ValueError(f"unknown summary columns {sorted(unknown)}; valid: {', '.join(SUMMARY_COLUMNS)}")
    missing = [k for k in KEY_COLUMNS if row.get(k) in (None, "")]
    if missing:
        raise ValueError(f"a summary row needs {', '.join(missing)}")
    path = Path(path)
    check_summary_table(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = {k: _cell(v) for k, v in row.items() if v is not None}
    with _locked(path):
        rows = read_summary(path)
        key = tuple(new[k] for k in KEY_COLUMNS)
        for existing in rows:
            if tuple(existing[k] for k in KEY_COLUMNS) == key:
                existing.update(new)
                merged = existing
                break
        else:
            merged = {c: new.get(c, "") for c in SUMMARY_COLUMNS}
            rows.append(merged)
        _write_atomic(path, rows)
    return merged


def drop_summary_rows(path: str | os.PathLike, frame_rates, methods, keep) -> list[dict[str, str]]:
    """Remove the rows of `methods` at `frame_rates` whose (model, frame_ms) is not in `keep`; returns them.

    A run that evaluates a set of models (the downstream notebook) owns the table's rows of its methods and frame
    rates: a row it did not write this time is a result of an earlier run (a model no longer among its points,
    an older probe setting) and must not stand in for a measurement. Rows of other methods (the CLI's own
    evaluations under another method name, zoo models) and of other frame rates are left alone.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rates, methods = {str(int(r)) for r in frame_rates}, set(methods)
    keep = {(str(model), str(int(rate))) for model, rate in keep}

    def stale(row: dict) -> bool:
        return row["frame_ms"] in rates and row["method"] in methods and (row["model"], row["frame_ms"]) not in keep

    with _locked(path):
        rows = read_summary(path)
        dropped = [r for r in rows if stale(r)]
        if dropped:
            _write_atomic(path, [r for r in rows if not stale(r)])
    return dropped


def _cell(value) -> str:
    if isinstance(value, bool):
        raise ValueError("boolean values have no column in the summary")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _write_atomic(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


@contextmanager
def _locked(path: Path):
    """An exclusive lock on `<path>.lock` for the read-modify-write of the table."""
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_table(table, path) -> Path:
    """Write a results table (a pandas DataFrame) as CSV without its index, atomically (a crash never leaves half
    a file)."""
    return write_text_atomic(path, table.to_csv(index=False))
