"""Log-Mel features: Kaldi compatibility, 20 ms stacking, normalisation, the on-disk cache."""

import math
import shutil

import pytest
import torch
from torchaudio.compliance import kaldi

from compress_lib.data import features as F
from compress_lib.data.audio import load_audio, write_wav
from compress_lib.data.features import feature_stats, load_features, log_mel, stack_pairs
from compress_lib.data.manifest import read_split
from compress_lib.errors import CompressLibError


def test_log_mel_is_kaldi_fbank_of_int16_scaled_wave():
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    feats = log_mel(wave)
    assert feats.shape == (1 + (16000 - 400) // 160, 40) == (98, 40)
    reference = kaldi.fbank(
        wave[None] * 32768, num_mel_bins=40, frame_length=25, frame_shift=10, window_type="hamming", dither=0.0
    )
    assert torch.allclose(feats, reference)


def test_log_mel_bad_input():
    with pytest.raises(ValueError, match=r"expected a mono waveform of shape \(num_samples,\), found \(2, 800\)"):
        log_mel(torch.zeros(2, 800))
    with pytest.raises(CompressLibError, match="shorter than one 25 ms window"):
        log_mel(torch.zeros(399))


@pytest.mark.parametrize("T", [1, 6, 7])
def test_stack_pairs(T):
    x = torch.arange(T * 40, dtype=torch.float32).reshape(T, 40)
    y = stack_pairs(x)
    assert y.shape == (math.ceil(T / 2), 80)
    assert torch.equal(y[0, :40], x[0])
    if T > 1:
        assert torch.equal(y[0, 40:], x[1])
    if T % 2:
        assert torch.equal(y[-1, 40:], torch.zeros(40)) and torch.equal(y[-1, :40], x[-1])


def test_load_features_normalised_with_pretrain_stats(smoke_corpus):
    fs10 = load_features(smoke_corpus, "pretrain", 10, progress=False)
    frames = torch.cat(fs10.feats)
    assert frames.shape[1] == 40 and fs10.feat_dim == 40 and fs10.frame_ms == 10
    assert frames.mean(0).abs().max() < 1e-3 and (frames.std(0) - 1).abs().max() < 1e-3
    mean, std = feature_stats(smoke_corpus)
    assert mean.shape == std.shape == (40,)
    utt = fs10.utterances[0]
    assert torch.allclose(fs10.feats[0], (log_mel(load_audio(utt.path)) - mean) / std, atol=1e-5)
    assert all(abs(f.shape[0] * 0.01 - u.duration) < 0.03 for f, u in zip(fs10.feats, fs10.utterances))


def test_load_features_20ms_stacks_normalised_pairs(smoke_corpus):
    fs10 = load_features(smoke_corpus, "sid-test", 10, progress=False)
    fs20 = load_features(smoke_corpus, "sid-test", 20, progress=False)
    assert [u.id for u in fs20.utterances] == [u.id for u in read_split(smoke_corpus, "sid-test")]
    assert fs20.feat_dim == 80 and all(f.shape[1] == 80 and f.dtype == torch.float32 for f in fs20.feats)
    assert fs20.lengths == [math.ceil(n / 2) for n in fs10.lengths]
    assert torch.equal(fs20.feats[0], stack_pairs(fs10.feats[0]))


def test_features_are_cached_and_reused(smoke_corpus, monkeypatch):
    load_features(smoke_corpus, "pr-dev", 10, progress=False)
    assert len(list((smoke_corpus / ".cache").glob("logmel.pr-dev.*.pt"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(F, "log_mel", fail)
    again = load_features(smoke_corpus, "pr-dev", 20, progress=False)
    assert len(again) == len(read_split(smoke_corpus, "pr-dev"))


def test_cache_key_changes_with_audio_and_settings(smoke_corpus, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    shutil.copytree(smoke_corpus, corpus, ignore=shutil.ignore_patterns(".cache"))
    key = F.audio_key(corpus, "pr-test")
    assert F.audio_key(corpus, "pr-test") == key
    monkeypatch.setitem(F.FBANK_OPTIONS, "num_mel_bins", 80)
    assert F.audio_key(corpus, "pr-test") != key
    monkeypatch.undo()
    before = load_features(corpus, "pr-test", 10, progress=False).feats[0]
    utt = read_split(corpus, "pr-test")[0]
    write_wav(utt.path, 0.5 * load_audio(utt.path).numpy())  # new audio for one utterance
    assert F.audio_key(corpus, "pr-test") != key
    after = load_features(corpus, "pr-test", 10, progress=False).feats[0]
    assert not torch.allclose(before, after)
    assert len(list((corpus / ".cache").glob("logmel.pr-test.*.pt"))) == 1  # the stale cache is removed


def test_bad_frame_rate(smoke_corpus):
    with pytest.raises(CompressLibError, match=r"unknown frame rate \(ms\) 15; valid: 10, 20"):
        load_features(smoke_corpus, "pretrain", 15)
