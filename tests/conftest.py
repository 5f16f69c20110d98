"""Shared fixtures of the test suite.

`smoke_corpus`: a tiny stand-in corpus (scale 0.02: about 80 utterances, 7 minutes of audio, every split,
8 speakers in each SID split), generated once per test session in a few seconds. Every area's tests use it;
its `.cache/` (features, k-means labels) is shared within the session.

`one_thread` and `teacher_and_data` serve the compression tests: a module that runs trajectories marks itself
`pytestmark = pytest.mark.usefixtures("one_thread")` and runs `run_method(method, teacher_and_data, out)`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SMOKE_SCALE = 0.02
SMOKE_SEED = 0


@pytest.fixture(scope="session")
def smoke_corpus(tmp_path_factory) -> Path:
    """Path of a tiny generated corpus (all seven splits, `corpus.json`); treat its audio as read-only."""
    from compress_lib.data.generate import generate_corpus

    out = tmp_path_factory.mktemp("smoke_corpus") / "corpus"
    generate_corpus(out, scale=SMOKE_SCALE, seed=SMOKE_SEED, jobs=1, progress=False)
    return out


def make_synthetic_teacher(directory, num_utterances: int):
    """A randomly initialised smoke-size 20 ms teacher checkpoint and synthetic frames/targets of its shape."""
    import torch

    from compress_lib.checkpoint import save_checkpoint
    from compress_lib.config import config_for_preset
    from compress_lib.model import MelHuBERT

    cfg = config_for_preset("smoke", 20)
    torch.manual_seed(0)
    path = directory / "teacher.pt"
    save_checkpoint(path, MelHuBERT(cfg))
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(40, 120, (num_utterances,), generator=g)
    feats = [torch.randn(int(n), cfg.feat_dim, generator=g) for n in lengths]
    targets = [torch.randint(0, cfg.num_clusters, (f.shape[0],), generator=g) for f in feats]
    return path, feats, targets


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest (and steadiest on a shared machine) on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def teacher_and_data(tmp_path_factory):
    """A randomly initialised smoke-size teacher and synthetic frames/targets of its shape (one per module)."""
    return make_synthetic_teacher(tmp_path_factory.mktemp("teacher"), num_utterances=12)


def run_method(method, teacher_and_data, out, **kw):
    """Run one compression trajectory at the smoke preset on `teacher_and_data`, quietly."""
    from compress_lib.compression import RUNNERS

    path, feats, targets = teacher_and_data
    return RUNNERS[method](path, feats, targets, out, preset="smoke", progress=False, **kw)
