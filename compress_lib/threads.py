"""PyTorch's CPU thread count for a block of code: the one place the package changes it temporarily."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from compress_lib.errors import CompressLibError


@contextmanager
def num_threads(threads: int | None) -> Iterator[int]:
    """Run a block with `threads` intra-op CPU threads (None: leave the current setting), then restore the
    previous number; yields the number in use. Small ops (one utterance's fbank, a linear probe's step) run
    faster on one thread than shared between the busy cores of a small machine."""
    old = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise CompressLibError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
