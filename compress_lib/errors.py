"""One exception type for every mistake a user can make.

Raise `CompressLibError` with a message that names what is wrong *and* how to fix it. The command-line entry
point prints it as one line (`error: ...`) and exits non-zero, never with a traceback.
"""


class CompressLibError(Exception):
    """A user-facing error: bad input, missing data, an unknown name. The message names the fix."""


def check_choice(value: str, choices, what: str) -> str:
    """Return `value` if it is one of `choices`, else raise an error listing the valid ones."""
    choices = list(choices)
    if value not in choices:
        raise CompressLibError(f"unknown {what} {value!r}; valid: {', '.join(map(str, choices))}")
    return value


# -- checks of command-line paths and values, made before any work ------------------------------------------------

SEED_MAX = 2**32 - 1  # numpy's and scikit-learn's seeds must lie in 0 .. 2**32 - 1


def check_seed(value: int, flag: str = "--seed") -> int:
    """`value` if it is a usable random seed (0 .. 2**32 - 1), else one clear error."""
    if not 0 <= value <= SEED_MAX:
        raise CompressLibError(f"{flag} {value} is out of range: give an integer from 0 to {SEED_MAX}")
    return value


def check_positive_number(value: float, flag: str, allow_zero: bool = False) -> float:
    """`value` if it is a finite number > 0 (>= 0 with `allow_zero`), else one clear error naming the flag."""
    import math

    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise CompressLibError(f"{flag} {value} is not allowed: give a finite number {bound}")
    return value


def _first_existing(path):
    """The path itself or its nearest existing ancestor (where a new folder would be created)."""
    from pathlib import Path

    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_output_folder(path, flag: str = "--out"):
    """Check before any work that `path` can be (or already is) a folder we can write into.

    Catches `--out` naming an existing file, a path through a file, and a folder without write permission.
    """
    import os
    from pathlib import Path

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CompressLibError(f"{flag} {path} is a file, not a folder: name a new or existing folder")
    existing = _first_existing(path)
    if not existing.is_dir():
        raise CompressLibError(f"{flag} {path} lies under {existing}, which is a file: name a folder elsewhere")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CompressLibError(f"no permission to write in {existing} (for {flag} {path}): choose a folder you can "
                               "write to or fix its permissions")
    return path


def check_output_file(path, flag: str = "--out", example: str = "model.pt"):
    """Check before any work that `path` names a file we can write (not a folder, under a writable folder)."""
    import os
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise CompressLibError(f"{flag} {path} is a folder: name the file to write, e.g. {path / example}")
    existing = _first_existing(path.parent)
    if not existing.is_dir():
        raise CompressLibError(f"{flag} {path} lies under {existing}, which is a file: name a path elsewhere")
    writable_target = os.access(path, os.W_OK) if path.exists() else os.access(existing, os.W_OK | os.X_OK)
    if not writable_target:
        raise CompressLibError(f"no permission to write {path} ({flag}): choose a path you can write to or fix its "
                               "permissions")
    return path


def check_input_file(path, flag: str, what: str = "checkpoint", inside: str = "model.pt"):
    """Check that `path` is an existing file; a folder gets a hint to point at the file inside it."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        hint = f"point at the {inside} inside it ({path / inside})" if (path / inside).is_file() else \
            f"point at a {what} file (e.g. {path / inside})"
        raise CompressLibError(f"{flag} {path} is a folder, not a {what}: {hint}")
    if not path.is_file():
        raise CompressLibError(f"{flag} {path}: {what} does not exist; check the path (or run the step that writes it)")
    return path


# -- resuming -----------------------------------------------------------------------------------------------------
def check_same_settings(recorded: dict, wanted: dict, what: str, fix: str) -> None:
    """The one resume guard: a folder keeps the settings it was started with. When `recorded` (read from the
    folder) and `wanted` (this run's) differ, raise one CompressLibError: '<what> (differs in: <keys>); <fix>'."""
    changed = sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k))
    if changed:
        raise CompressLibError(f"{what} (differs in: {', '.join(changed)}); {fix}")


# -- the machine faults the command line turns into one line -----------------------------------------------------

# functions whose local `path` names the file being written when a fault happens inside them
_WRITER_FUNCTIONS = ("atomic_path", "atomic_write", "atomic_torch_save", "write_wav", "write_text_atomic",
                     "_write_atomic", "save_checkpoint")
# what torch.save's zip writer says when the disk fills under it (it raises RuntimeError, not OSError)
_TORCH_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter failed", "file write failed")
DISK_FULL_FIX = "free some space and rerun the same command; finished steps are kept"


# pathlib methods whose `self` names the file they write
_PATHLIB_WRITERS = ("write_text", "write_bytes", "open", "mkdir", "touch")


def _path_in_traceback(exc: BaseException):
    """The file being written by the innermost writer in `exc`'s traceback (a writer function's local `path`, or
    the `self` of a pathlib write), or None."""
    from pathlib import PurePath

    found = None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        name, local = frame.f_code.co_name, frame.f_locals
        if name in _WRITER_FUNCTIONS and "path" in local:
            found = local["path"]
        elif name in _PATHLIB_WRITERS and isinstance(local.get("self"), PurePath):
            found = local["self"]
        tb = tb.tb_next
    return found


def fault_path(exc: BaseException):
    """The file a system error is about: its `filename`, else the path a writer function was writing."""
    name = getattr(exc, "filename", None)
    return name if name is not None else _path_in_traceback(exc)


def is_disk_full(exc: BaseException) -> bool:
    """A write that failed because the disk is full: ENOSPC / EDQUOT, or torch.save's truncated-zip RuntimeError."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in _TORCH_WRITE_FAILURES)


def describe_fault(exc: BaseException) -> str | None:
    """One line (without `error: `) for a machine fault or a path mistake the checks did not catch; None if `exc`
    is not one of them (a bug: let its traceback show)."""
    path = fault_path(exc)
    where = f" {path}" if path is not None else ""
    if is_disk_full(exc):
        return f"no space left on the device writing{where}: {DISK_FULL_FIX}"
    if isinstance(exc, PermissionError):
        return f"permission denied on{where}: choose a path you can write to (--out) or fix its permissions"
    if isinstance(exc, NotADirectoryError):
        return f"{path} is not a folder (a file stands where a folder is needed): name a folder, or move the file away"
    if isinstance(exc, IsADirectoryError):
        return f"{path} is a folder where a file is needed: name a file (e.g. {path}/model.pt)"
    if isinstance(exc, FileExistsError):
        return f"{path} already exists as a file where a folder is needed: name another path or move the file away"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"the system refused to read or write{where} ({exc.strerror}): check the path and the disk, then " \
               "rerun the same command; finished steps are kept"
    return None
