"""Shared fixtures of the test suite.

`smoke_corpus`: a tiny stand-in corpus (scale 0.02: about 80 utterances, 7 minutes of audio, every split,
8 speakers in each SID split), generated once per test session in a few seconds. Every area's tests use it;
its `.cache/` (features, k-means labels) is shared within the session.
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
