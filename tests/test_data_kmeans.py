"""K-means targets: stage 1 on log-Mel, stage 2 on a model's hidden states; aligned, seeded, cached."""

import pytest
import torch

from compress_lib.checkpoint import safe_torch_load
from compress_lib.config import config_for_preset
from compress_lib.data import kmeans as K
from compress_lib.data.features import load_features
from compress_lib.data.kmeans import stage1_targets, stage2_targets
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT

SMOKE_K = config_for_preset("smoke").num_clusters  # 16


def _forbid_fit(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("k-means refit although its labels are cached")

    monkeypatch.setattr(K, "fit_kmeans", fail)


@pytest.mark.parametrize("frame_ms", [10, 20])
def test_stage1_aligned_with_features(smoke_corpus, frame_ms):
    labels = stage1_targets(smoke_corpus, SMOKE_K, seed=0, frame_ms=frame_ms)
    feats = load_features(smoke_corpus, "pretrain", frame_ms, progress=False).feats
    assert [lab.shape[0] for lab in labels] == [f.shape[0] for f in feats]
    assert all(lab.dtype == torch.int64 for lab in labels)
    every = torch.cat(labels)
    assert every.min() >= 0 and every.max() < SMOKE_K
    assert torch.unique(every).numel() == SMOKE_K  # every cluster is used


def test_stage1_20ms_labels_are_those_of_frames_2t(smoke_corpus):
    ten = stage1_targets(smoke_corpus, SMOKE_K, seed=0, frame_ms=10)
    twenty = stage1_targets(smoke_corpus, SMOKE_K, seed=0, frame_ms=20)
    assert all(torch.equal(b, a[0::2]) for a, b in zip(ten, twenty))


def test_stage1_cached_seeded_and_recorded(smoke_corpus, monkeypatch):
    first = stage1_targets(smoke_corpus, SMOKE_K, seed=0, frame_ms=10)
    paths = (smoke_corpus / ".cache").glob("kmeans.stage1.*.pt")
    (path,) = [p for p in paths if _meta(p)["seed"] == 0 and _meta(p)["num_clusters"] == SMOKE_K]
    meta = _meta(path)
    assert meta["stage"] == 1 and meta["layer"] is None and meta["model"] is None and "log-Mel" in meta["source"]
    path.unlink()
    again = stage1_targets(smoke_corpus, SMOKE_K, seed=0, frame_ms=10)  # refit from scratch: same labels
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    other = stage1_targets(smoke_corpus, SMOKE_K, seed=1, frame_ms=10)
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    _forbid_fit(monkeypatch)
    cached = stage1_targets(smoke_corpus, SMOKE_K, seed=0, frame_ms=20)
    assert len(cached) == len(first)


def _meta(path):
    return safe_torch_load(path, "labels")["meta"]


def _smoke_model(frame_ms=20, seed=0):
    torch.manual_seed(seed)
    return MelHuBERT(config_for_preset("smoke", frame_ms))


def test_stage2_aligned_cached_and_keyed_by_weights(smoke_corpus, monkeypatch):
    model = _smoke_model()
    labels = stage2_targets(smoke_corpus, model, layer=2, num_clusters=8, seed=0, frame_ms=20)
    feats = load_features(smoke_corpus, "pretrain", 20, progress=False).feats
    assert [lab.shape[0] for lab in labels] == [f.shape[0] for f in feats]
    assert torch.cat(labels).max() < 8
    assert model.training  # mode restored
    paths = list((smoke_corpus / ".cache").glob("kmeans.stage2.*.pt"))
    metas = [_meta(p) for p in paths]
    assert any(m["layer"] == 2 and m["model"] == K.model_digest(model) and m["stage"] == 2 for m in metas)

    with monkeypatch.context() as m:
        _forbid_fit(m)
        cached = stage2_targets(smoke_corpus, model, layer=2, num_clusters=8, seed=0, frame_ms=20)
    assert all(torch.equal(a, b) for a, b in zip(labels, cached))

    digest = K.model_digest(model)
    with torch.no_grad():
        model.layers[0].fc1.weight.add_(0.01)  # new weights: new key, recomputed
    assert K.model_digest(model) != digest
    with monkeypatch.context() as m:
        _forbid_fit(m)
        with pytest.raises(AssertionError, match="refit"):
            stage2_targets(smoke_corpus, model, layer=2, num_clusters=8, seed=0, frame_ms=20)


def test_stage2_hidden_states_batched_equal_unbatched(smoke_corpus):
    model = _smoke_model()
    feats = load_features(smoke_corpus, "pretrain", 20, progress=False).feats[:5]
    batched = K.hidden_frames(model, feats, layer=3, progress=False)
    model.eval()
    with torch.no_grad():
        for f, h in zip(feats, batched):
            alone = model(f[None], num_layers=3, compute_logits=False).hidden_states[3][0]
            assert torch.allclose(alone, h, atol=1e-4)


def test_stage2_bad_arguments(smoke_corpus):
    model = _smoke_model(frame_ms=20)
    with pytest.raises(CompressLibError, match="the model reads 20 ms frames, not 10 ms"):
        stage2_targets(smoke_corpus, model, layer=1, num_clusters=8, seed=0, frame_ms=10)
    with pytest.raises(CompressLibError, match=r"layer must be in 0..4"):
        stage2_targets(smoke_corpus, model, layer=5, num_clusters=8, seed=0, frame_ms=20)


def test_too_many_clusters_for_the_corpus(smoke_corpus):
    with pytest.raises(CompressLibError, match=r"needs at least 1000000 frames.*--scale"):
        stage1_targets(smoke_corpus, 1_000_000, seed=0, frame_ms=10)
