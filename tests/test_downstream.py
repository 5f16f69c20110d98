"""Downstream probes: weighted sum, CTC decoding, PER, the SID pooling shortcut, probe training (learns what
is there, deterministic, resumable) and the hidden-state layout. Synthetic hidden states only; the pipeline on
a generated corpus is in test_downstream_pipeline.py."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from compress_lib.downstream.evaluate import (
    DOWNSTREAM_PRESETS,
    ProbeData,
    ProbeHParams,
    probe_metric,
    train_probe,
)
from compress_lib.threads import num_threads
from compress_lib.downstream.probes import (
    BLANK,
    PhoneRecognitionProbe,
    SpeakerIDProbe,
    WeightedLayerSum,
    ctc_greedy_decode,
    phone_error_rate,
)
from compress_lib.downstream.upstream import HiddenStates, stack_hidden_states
from compress_lib.presets import PRESET_NAMES


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: a second thread only adds synchronisation (and the suite shares the cores)."""
    with num_threads(1):
        yield


# -- probes ---------------------------------------------------------------------------------------------------
def test_weighted_sum_starts_as_the_mean_of_the_layers():
    h = torch.randn(2, 5, 7, 3)  # (B, L, T, D)
    ws = WeightedLayerSum(5)
    assert ws.layer_weights() == pytest.approx([0.2] * 5)
    torch.testing.assert_close(ws(h), h.mean(1))
    torch.testing.assert_close(ws(h[:, :, 0]), h[:, :, 0].mean(1))  # (B, L, D) means -> (B, D)
    with pytest.raises(ValueError, match="expected 5 hidden states"):
        ws(torch.randn(2, 4, 7, 3))


def test_pr_probe_is_projector_then_classifier_per_frame():
    torch.manual_seed(0)
    probe = PhoneRecognitionProbe(num_layers=3, dim=8, num_classes=40)
    probe.weighted_sum.weights.data = torch.randn(3)
    h = torch.randn(2, 3, 11, 8)
    ref = probe.classifier(probe.projector(probe.weighted_sum(h)))
    out = probe(h)
    torch.testing.assert_close(out, ref)
    # the composed weights give the same gradients as the two layers applied one after the other
    grads = torch.autograd.grad(out.square().sum(), list(probe.parameters()))
    ref_grads = torch.autograd.grad(ref.square().sum(), list(probe.parameters()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)
    assert probe.projector.out_features == 256


def test_sid_probe_on_layer_means_equals_mean_pooling_of_projected_frames():
    torch.manual_seed(0)
    probe = SpeakerIDProbe(num_layers=4, dim=6, num_classes=9)
    probe.weighted_sum.weights.data = torch.randn(4)
    lengths = torch.tensor([7, 3, 5])
    frames = [torch.randn(4, n, 6) for n in lengths.tolist()]  # (L, T_i, D)
    states = stack_hidden_states(["a", "b", "c"], enumerate(frames), frame_ms=20, keep_frames=True)
    padded, got_lengths = states.padded_batch([0, 1, 2])
    assert torch.equal(got_lengths, lengths)
    frame_level = probe(padded, lengths)
    torch.testing.assert_close(probe.forward_pooled(states.pooled), frame_level, rtol=1e-3, atol=1e-3)


def test_ctc_greedy_decoding_merges_repeats_then_drops_blanks():
    a, b = 3, 5
    frames = [a, a, BLANK, a, b, b, BLANK, BLANK, b, 7]  # last frame beyond the length
    logits = torch.nn.functional.one_hot(torch.tensor([frames]), 10).float()  # (1, T, C)
    assert ctc_greedy_decode(logits, torch.tensor([9])) == [[a, a, b, b]]
    assert ctc_greedy_decode(logits, torch.tensor([10])) == [[a, a, b, b, 7]]


def test_phone_error_rate_counts_substitutions_insertions_deletions():
    refs = [[1, 2, 3, 4], [5, 6]]
    assert phone_error_rate(refs, refs) == 0.0
    hyps = [[1, 9, 3], [5, 6, 6]]  # 1 substitution + 1 deletion; 1 insertion
    assert phone_error_rate(hyps, refs) == pytest.approx(100 * 3 / 6)
    with pytest.raises(ValueError):
        phone_error_rate([[1]], [[]])


# -- hidden-state containers ----------------------------------------------------------------------------------
def test_length_batches_cover_every_utterance_once_with_zero_padding():
    lengths = [5, 9, 2, 7, 7]
    frames = [torch.randn(3, n, 4) + 10 for n in lengths]
    states = stack_hidden_states([str(i) for i in range(5)], enumerate(frames), frame_ms=20, keep_frames=True)
    assert states.frames.shape == (3, sum(lengths), 4) and states.frames.dtype == torch.float16
    torch.testing.assert_close(states.pooled, torch.stack([f.mean(1) for f in frames]))
    batches = states.length_batches(2)
    seen = sorted(i for index, _, _ in batches for i in index)
    assert seen == list(range(5))
    for index, hidden, got in batches:
        assert hidden.dtype == torch.float16 and hidden.shape[:2] == (len(index), 3)
        for b, i in enumerate(index):
            n = lengths[i]
            assert got[b] == n
            torch.testing.assert_close(hidden[b, :, :n].float(), frames[i], atol=1e-2, rtol=1e-3)
            assert torch.all(hidden[b, :, n:] == 0)
    assert [len(index) for index, _, _ in batches] == [2, 2, 1]
    assert [int(got.max()) for _, _, got in batches] == [9, 7, 2]  # sorted by length: little padding


def test_an_utterance_without_frames_is_a_clear_error():
    from compress_lib.errors import CompressLibError

    with pytest.raises(CompressLibError, match="no frames"):
        stack_hidden_states(["x"], enumerate([torch.zeros(2, 0, 3)]), frame_ms=20, keep_frames=False)


# -- training on synthetic hidden states ------------------------------------------------------------------
def synthetic_phone_data(n: int, seed: int, informative_layer: int = 2, layers: int = 4, dim: int = 16):
    """Utterances whose phones (3 frames each) are readable from one layer only; the others are noise."""
    g = torch.Generator().manual_seed(seed)
    codebook = torch.randn(40, dim, generator=torch.Generator().manual_seed(123))
    frames, labels = [], []
    for _ in range(n):
        steps = torch.randint(1, 39, (int(torch.randint(6, 12, (1,), generator=g)),), generator=g)
        phones = (torch.cumsum(steps, 0) % 39) + 1  # no phone repeats its predecessor
        T = 3 * len(phones) + 2
        h = torch.randn(layers, T, dim, generator=g)
        noise = 0.3 * torch.randn(T - 2, dim, generator=g)
        h[informative_layer, 1:-1] = codebook[phones].repeat_interleave(3, 0) + noise
        frames.append(h)
        labels.append(phones)
    states = stack_hidden_states([str(i) for i in range(n)], enumerate(frames), frame_ms=20, keep_frames=True)
    return ProbeData(states, labels)


def synthetic_speaker_data(n_per_speaker: int, seed: int, speakers: int = 8, informative_layer: int = 1):
    g = torch.Generator().manual_seed(seed)
    voices = torch.randn(speakers, 16, generator=torch.Generator().manual_seed(7))
    frames, labels = [], []
    for s in range(speakers):
        for _ in range(n_per_speaker):
            h = torch.randn(3, 20, 16, generator=g)
            h[informative_layer] += voices[s]
            frames.append(h)
            labels.append(s)
    states = stack_hidden_states([str(i) for i in range(len(frames))], enumerate(frames), frame_ms=20,
                                 keep_frames=False)
    return ProbeData(states, torch.tensor(labels))


PR_HP = ProbeHParams(lr=1e-2, steps=150, batch=8, eval_every=50)


def test_pr_probe_learns_phones_and_finds_the_informative_layer():
    train, dev = synthetic_phone_data(48, seed=0), synthetic_phone_data(12, seed=1)
    untrained = probe_metric("pr", PhoneRecognitionProbe(4, 16, 40), dev)
    run = train_probe("pr", train, dev, 40, PR_HP, seed=0, progress=False)
    assert untrained > 90
    assert run.best_dev < 20, run.dev_history
    weights = run.probe.weighted_sum.layer_weights()
    assert max(range(4), key=weights.__getitem__) == 2, weights
    assert run.best_dev == min(v for _, v in run.dev_history)


def test_sid_probe_learns_speakers_from_layer_means():
    train, dev = synthetic_speaker_data(6, seed=0), synthetic_speaker_data(2, seed=1)
    hp = ProbeHParams(lr=1e-2, steps=100, batch=16, eval_every=25)
    run = train_probe("sid", train, dev, 8, hp, seed=0, progress=False)
    assert run.best_dev > 90, run.dev_history
    weights = run.probe.weighted_sum.layer_weights()
    assert max(range(3), key=weights.__getitem__) == 1, weights


def test_probe_training_is_deterministic_and_resumes_to_the_same_probe(tmp_path):
    train, dev = synthetic_phone_data(16, seed=0), synthetic_phone_data(4, seed=1)
    hp = ProbeHParams(lr=1e-2, steps=40, batch=4, eval_every=10)
    a = train_probe("pr", train, dev, 40, hp, seed=3, progress=False)
    b = train_probe("pr", train, dev, 40, hp, seed=3, progress=False)
    # interrupted after 20 updates, then resumed from its saved state
    state = tmp_path / "pr_state.pt"
    train_probe("pr", train, dev, 40, dataclasses.replace(hp, steps=20), seed=3, state_path=state, progress=False)
    c = train_probe("pr", train, dev, 40, hp, seed=3, state_path=state, progress=False)
    other = train_probe("pr", train, dev, 40, hp, seed=4, progress=False)
    for run in (b, c):
        assert run.dev_history == a.dev_history and run.best_step == a.best_step
        for k, v in a.probe.state_dict().items():
            torch.testing.assert_close(run.probe.state_dict()[k], v, rtol=0, atol=0)
    assert not torch.equal(other.probe.projector.weight, a.probe.projector.weight)


def test_presets_cover_both_tasks_and_paper_is_s3prl():
    assert set(DOWNSTREAM_PRESETS) == set(PRESET_NAMES)
    for preset in PRESET_NAMES:
        assert set(DOWNSTREAM_PRESETS[preset]) == {"pr", "sid"}
    pr, sid = DOWNSTREAM_PRESETS["paper"]["pr"], DOWNSTREAM_PRESETS["paper"]["sid"]
    assert (pr.lr, pr.steps, pr.batch * pr.grad_accum) == (1e-2, 100_000, 32)
    assert (sid.lr, sid.steps, sid.batch * sid.grad_accum) == (1e-4, 200_000, 32)


def test_hidden_states_without_frames_cannot_be_batched():
    states = HiddenStates(ids=["a"], lengths=torch.tensor([3]), pooled=torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="means only"):
        states.padded_batch([0])
