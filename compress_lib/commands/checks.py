"""Argument types and small guards the subcommands share (not a subcommand itself).

The `*_arg` functions are argparse `type=` callables: a bad value becomes one line
`error: argument --seed: ... (see `compress-lib pretrain --help`)` and exit status 2, before any work starts.
"""

from __future__ import annotations

import argparse
import math
from contextlib import contextmanager

from compress_lib.errors import SEED_MAX


def _number(text: str, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None


def seed_arg(text: str) -> int:
    """A random seed: an integer from 0 to 2**32 - 1 (what numpy and scikit-learn accept)."""
    value = _number(text, int)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give an integer from 0 to {SEED_MAX}")
    return value


def positive_int_arg(text: str) -> int:
    """An integer >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give an integer >= 1")
    return value


def positive_float_arg(text: str) -> float:
    """A finite number > 0 (rejects nan, inf, 0 and negatives)."""
    value = _number(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give a finite number > 0")
    return value


def non_negative_float_arg(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give a finite number >= 0")
    return value


def density_arg(text: str) -> float:
    """A density: the fraction of weights kept, 0 < d <= 1."""
    value = _number(text)
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"{text} is not a density: give the fraction of weights kept, 0 < d <= 1 "
                                         "(e.g. 0.3)")
    return value


@contextmanager
def progress_bars(enabled: bool):
    """With `enabled` False, every tqdm bar created inside is disabled (also those of helpers that take no
    `progress` flag, such as the k-means feature extraction of pretraining stage 2)."""
    if enabled:
        yield
        return
    import tqdm.std

    bar_class = tqdm.std.tqdm
    saved = bar_class.__dict__["__init__"]  # may be a descriptor (tqdm wraps it): restore it as it was
    original_init = bar_class.__init__

    def quiet_init(self, *args, **kwargs):
        kwargs["disable"] = True
        original_init(self, *args, **kwargs)

    bar_class.__init__ = quiet_init
    try:
        yield
    finally:
        bar_class.__init__ = saved
