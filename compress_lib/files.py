"""Paths of the project, files written whole or not at all, and their hashes (the one place the package writes a
file atomically).

A relative path is relative to the project root whatever directory the code runs in (papermill from the root,
Jupyter from `notebooks/`, Binder from `data/results/<preset>/`): `resolve_path` makes it absolute, `display_path`
writes one back relative to the root (results stay machine independent).

Every result, checkpoint, cache entry and record goes through `atomic_path` (or the helpers built on it): the
new content goes to a temporary file of its own beside the target (a unique name per writer, so processes that
write the same file at once never mix), is flushed to disk, and is renamed over the target, which therefore
holds the old or the complete new content, never part of one. The file gets a plain file's permissions (the
process's umask), and the temporary file is removed when writing fails.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it: it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` when the block ends without an error,
    removed when it raises. For writers that take a path (e.g. ONNX's); `atomic_write` for file objects."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600): give it a plain file's permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, write: Callable) -> Path:
    """Call `write(f)` on a file opened for writing bytes, flush it to disk, and put it in place of `path`
    atomically (checkpoints)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
