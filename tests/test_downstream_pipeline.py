"""The downstream pipeline on a generated corpus: upstream kinds, batched encoding, the hidden-state cache, and
`compress-lib evaluate` end to end (JSON, summary row, resume, one-line errors)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from compress_lib import cli
from compress_lib.checkpoint import save_checkpoint
from compress_lib.config import config_for_preset
from compress_lib.threads import num_threads
from compress_lib.downstream.upstream import (
    _encode_melhubert,
    evict_cache,
    hidden_states_for_split,
    load_upstream,
)
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT
from compress_lib.results import read_summary


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: a second thread only adds synchronisation (and the suite shares the cores)."""
    with num_threads(1):
        yield


@pytest.fixture(scope="session")
def corpus(request, tmp_path_factory):
    """The suite's smoke corpus when conftest provides one, else a tiny generated corpus of our own."""
    try:
        return request.getfixturevalue("smoke_corpus")
    except pytest.FixtureLookupError:
        from compress_lib.data.generate import generate_corpus

        out = tmp_path_factory.mktemp("downstream") / "corpus"
        generate_corpus(out, scale=0.05, seed=0, jobs=1, progress=False)
        return out


def smoke_checkpoint(path, frame_ms=20, seed=0, **meta):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = MelHuBERT(config_for_preset("smoke", frame_ms))
    save_checkpoint(path, model, **meta)
    return model


# -- upstreams --------------------------------------------------------------------------------------------------
def test_batched_encoding_equals_one_utterance_at_a_time():
    torch.manual_seed(0)
    model = MelHuBERT(config_for_preset("smoke", 20)).eval()
    feats = [torch.randn(n, 80) for n in (37, 5, 60, 22)]
    batched = dict(_encode_melhubert(model, feats, num_layers=3, batch_frames=100, desc="test"))
    assert sorted(batched) == [0, 1, 2, 3]
    for i, x in enumerate(feats):
        with torch.no_grad():
            ref = torch.stack(model(x[None], num_layers=3, compute_logits=False).hidden_states)[:, 0]  # (L, T, D)
        assert batched[i].shape == (4, x.shape[0], 32)
        torch.testing.assert_close(batched[i], ref, atol=1e-4, rtol=1e-4)


def test_upstream_kinds(tmp_path):
    ckpt = tmp_path / "dense.pt"
    smoke_checkpoint(ckpt, method="dense", name="melhubert-dense", pretrain_loss=2.5)
    dense = load_upstream(str(ckpt))
    assert (dense.name, dense.method, dense.frame_ms, dense.num_layers) == ("melhubert-dense", "dense", 20, 4)

    truncated_path = tmp_path / "first2" / "model.pt"
    truncated_path.parent.mkdir()
    smoke_checkpoint(truncated_path, method="truncate", num_layers=2)
    truncated = load_upstream(str(truncated_path))
    assert (truncated.name, truncated.method, truncated.num_layers) == ("first2", "truncate", 2)
    assert load_upstream(str(truncated_path), num_layers=3).num_layers == 3
    assert load_upstream(str(truncated_path), num_layers=3).key != truncated.key

    twin_a = load_upstream(f"random-init:{ckpt}", seed=1)
    twin_b = load_upstream(f"random-init:{ckpt}", seed=1)
    assert twin_a.method == "random-init" and twin_a.model.cfg == dense.model.cfg
    assert twin_a.key == twin_b.key != dense.key
    assert torch.equal(twin_a.model.layers[0].fc1.weight, twin_b.model.layers[0].fc1.weight)
    assert not torch.equal(twin_a.model.layers[0].fc1.weight, dense.model.layers[0].fc1.weight)
    assert load_upstream(f"random-init:{ckpt}", seed=2).key != twin_a.key

    point = tmp_path / "points" / "3" / "model.pt"
    point.parent.mkdir(parents=True)
    smoke_checkpoint(point, method="weight", index=3, density=0.5, pretrain_loss=3.25)
    assert (load_upstream(str(point)).name, load_upstream(str(point)).method) == ("weight-0.5", "weight")
    untrained = tmp_path / "random_init.pt"
    smoke_checkpoint(untrained, stage=0, steps=0)  # pretraining's untrained twin
    assert (load_upstream(str(untrained)).name, load_upstream(str(untrained)).method) == ("random-init", "random-init")
    # beside a pretraining run's model, the twin is that run's own initial weights (seed no longer matters)
    initial = smoke_checkpoint(tmp_path / "run" / "random_init.pt", seed=7, stage=0, steps=0)
    smoke_checkpoint(tmp_path / "run" / "model.pt", seed=8, steps=100)
    twin = load_upstream(f"random-init:{tmp_path / 'run' / 'model.pt'}", seed=1)
    assert twin.method == "random-init" and twin.meta["weights"].endswith("random_init.pt")
    assert torch.equal(twin.model.layers[0].fc1.weight, initial.layers[0].fc1.weight)
    assert twin.key == load_upstream(f"random-init:{tmp_path / 'run' / 'model.pt'}", seed=2).key
    smoke_checkpoint(tmp_path / "plain.pt", steps=100)
    assert (load_upstream(str(tmp_path / "plain.pt")).name, load_upstream(str(tmp_path / "plain.pt")).method) == (
        "dense", "dense")
    assert load_upstream(str(point), name="custom").name == "custom"

    fbank = load_upstream("fbank", frame_ms=10)
    assert (fbank.method, fbank.frame_ms, fbank.model) == ("fbank", 10, None)
    hidden = dict(fbank.encode([torch.randn(7, 40)]))[0]
    assert hidden.shape == (1, 7, 40)

    with pytest.raises(CompressLibError, match="20 ms model"):
        load_upstream(str(ckpt), frame_ms=10)
    with pytest.raises(CompressLibError, match="num-layers"):
        load_upstream(str(ckpt), num_layers=9)
    with pytest.raises(CompressLibError, match="does not exist"):
        load_upstream(str(tmp_path / "missing.pt"))
    with pytest.raises(CompressLibError, match="zoo model"):
        load_upstream("no-such-model")


def test_zoo_upstream_encodes_waveforms():
    zoo = load_upstream("distilhubert")
    assert (zoo.method, zoo.input_kind, zoo.frame_ms) == ("zoo", "wave", 20)
    waves = [torch.randn(8000), torch.randn(4800)]
    hidden = dict(zoo.encode(waves))
    assert hidden[0].shape[:2] == (3, 24) and hidden[1].shape[:2] == (3, 14)  # 2 layers + input; 50 Hz


# -- the cache ------------------------------------------------------------------------------------------------
def test_hidden_states_are_cached_by_content(corpus, tmp_path):
    ckpt = tmp_path / "m.pt"
    smoke_checkpoint(ckpt)
    cache = tmp_path / "cache"
    up = load_upstream(str(ckpt))
    first, hit = hidden_states_for_split(up, corpus, "pr-dev", cache, keep_frames=True)
    assert not hit and first.num_layers == 5 and first.frames.dtype == torch.float16
    second, hit = hidden_states_for_split(load_upstream(str(ckpt)), corpus, "pr-dev", cache, keep_frames=True)
    assert hit and second.ids == first.ids
    assert torch.equal(second.frames, first.frames) and torch.equal(second.pooled, first.pooled)
    # the per-layer means are those of the float32 states
    first_means = first.frames[:, : first.lengths[0]].float().mean(1)
    torch.testing.assert_close(first.pooled[0], first_means, atol=2e-3, rtol=1e-2)

    other_weights = tmp_path / "m2.pt"
    smoke_checkpoint(other_weights, seed=1)
    _, hit = hidden_states_for_split(load_upstream(str(other_weights)), corpus, "pr-dev", cache, keep_frames=True)
    assert not hit
    truncated, hit = hidden_states_for_split(load_upstream(str(ckpt), num_layers=1), corpus, "pr-dev", cache,
                                             keep_frames=True)
    assert not hit and truncated.num_layers == 2
    torch.testing.assert_close(truncated.frames, first.frames[:2])  # the first layers do not depend on later ones
    pooled, hit = hidden_states_for_split(up, corpus, "pr-dev", cache, keep_frames=False)
    assert not hit and pooled.frames is None
    torch.testing.assert_close(pooled.pooled, first.pooled)

    files = sorted(cache.glob("*.pt"))
    assert len(files) == 4
    files[0].write_bytes(b"not a torch file")  # a damaged entry is recomputed, not an error
    for age, f in enumerate(files):  # files[0] least recently used
        os.utime(f, (1e9 + age, 1e9 + age))
    evicted = evict_cache(cache, max_bytes=sum(f.stat().st_size for f in files[1:]), keep=files[-1])
    assert len(evicted) == 1 and evicted[0] == files[0] and not files[0].exists()


# -- the command ------------------------------------------------------------------------------------------------
def run_cli(argv, capsys):
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_evaluate_command_writes_results_and_summary_rows(corpus, tmp_path, capsys):
    ckpt = tmp_path / "dense.pt"
    smoke_checkpoint(ckpt, method="dense", name="dense", pretrain_loss=2.5)
    results, cache = tmp_path / "results", tmp_path / "cache"
    common = ["--preset", "smoke", "--data", str(corpus), "--results-dir", str(results), "--cache-dir", str(cache)]
    runs = [("pr", str(ckpt), "dense", []), ("sid", str(ckpt), "dense", []),
            ("pr", "fbank", "fbank", ["--no-profile"]), ("sid", "fbank", "fbank", []),
            ("pr", f"random-init:{ckpt}", "twin", ["--no-profile"])]
    for task, upstream, out, extra in runs:
        status, stdout, err = run_cli(["evaluate", task, "--upstream", upstream, "--out", str(tmp_path / out),
                                       *common, *extra], capsys)
        assert status == 0, err
        assert stdout.startswith(f"{task} ") and "test" in stdout

    result = json.loads((tmp_path / "dense" / "pr.json").read_text())
    assert result["metric"] == "per" and 0 <= result["test"] <= 100 * 3
    assert result["best_step"] in {s for s, _ in result["dev_history"]}
    assert len(result["layer_weights"]) == 5 and sum(result["layer_weights"]) == pytest.approx(1)
    assert (tmp_path / "dense" / "pr_log.csv").is_file()

    rows = {(r["model"], r["frame_ms"]): r for r in read_summary(results / "smoke" / "summary.csv")}
    assert set(rows) == {("dense", "20"), ("fbank", "20"), ("random-init", "20")}
    dense, fbank, twin = rows["dense", "20"], rows["fbank", "20"], rows["random-init", "20"]
    assert (dense["method"], fbank["method"], twin["method"]) == ("dense", "fbank", "random-init")
    assert dense["per"] and dense["sid_accuracy"] and fbank["per"] and fbank["sid_accuracy"] and twin["per"]
    assert float(dense["per"]) == pytest.approx(result["test"], abs=1e-3)
    assert dense["density"] == "1.0" and dense["pretrain_loss"] == "2.5" and not twin["pretrain_loss"]
    assert int(dense["params"]) > 0 and int(dense["nonzero_params"]) == int(dense["params"])
    assert float(dense["macs_per_second"]) > 0 and float(dense["real_time_factor"]) > 0
    assert fbank["params"] == "0" and fbank["density"] == "" and twin["sid_accuracy"] == ""

    # rerunning resumes the finished probe: same numbers, the cache is hit
    status, _, err = run_cli(["evaluate", "pr", "--upstream", str(ckpt), "--out", str(tmp_path / "dense"), *common,
                              "--no-profile"], capsys)
    assert status == 0, err
    again = json.loads((tmp_path / "dense" / "pr.json").read_text())
    assert again["test"] == result["test"] and all(again["cache_hit"].values())

    # another upstream into the same folder is refused in one line
    status, _, err = run_cli(["evaluate", "pr", "--upstream", "fbank", "--out", str(tmp_path / "dense"), *common],
                             capsys)
    assert status == 2 and err.startswith("error: ") and "another evaluation" in err and len(err.splitlines()) == 1


def test_evaluate_command_errors_are_one_line(tmp_path, capsys):
    for argv, fragment in [
        (["evaluate", "pr", "--upstream", "fbank", "--out", str(tmp_path), "--data", str(tmp_path / "none")],
         "does not exist"),
        (["evaluate", "sid", "--upstream", str(tmp_path / "nope.pt"), "--out", str(tmp_path), "--data", str(tmp_path)],
         "does not exist"),
    ]:
        status, _, err = run_cli(argv, capsys)
        assert status == 2 and err.startswith("error: ") and fragment in err and len(err.strip().splitlines()) == 1


def test_tune_probe_scores_each_candidate_on_dev(corpus, tmp_path):
    from compress_lib.downstream.evaluate import ProbeHParams, tune_probe

    ckpt = tmp_path / "m.pt"
    smoke_checkpoint(ckpt)
    candidates = [ProbeHParams(lr=1e-2, steps=6, batch=4, eval_every=3),
                  ProbeHParams(lr=1e-3, steps=6, batch=4, eval_every=3, schedule="linear")]
    rows = tune_probe("sid", load_upstream(str(ckpt)), corpus, candidates, tmp_path / "cache")
    assert [(r["lr"], r["schedule"]) for r in rows] == [(1e-2, "constant"), (1e-3, "linear")]
    assert all(0 <= r["dev"] <= 100 and r["best_step"] in (3, 6) for r in rows)
    with pytest.raises(CompressLibError, match="schedule"):
        ProbeHParams(lr=1e-2, steps=6, batch=4, schedule="cosine")


def test_evaluations_in_two_processes_equal_one_process(corpus, tmp_path):
    """`evaluate_many` spreads evaluations over worker processes; each is the same one-thread evaluation."""
    from compress_lib.downstream.evaluate import EvaluationJob, evaluate_many

    ckpt = tmp_path / "m.pt"
    smoke_checkpoint(ckpt)
    results = {}
    for processes in (1, 2):
        jobs = [EvaluationJob(task=task, spec=spec, out_dir=str(tmp_path / f"p{processes}" / f"{task}-{i}"))
                for i, spec in enumerate((str(ckpt), "fbank")) for task in ("pr", "sid")]
        results[processes] = [(r["task"], r["model"], r["test"], r["dev"])
                              for r in evaluate_many(jobs, corpus, "smoke", cache_dir=tmp_path / "cache",
                                                     processes=processes, progress=False)]
    assert results[1] == results[2]
    assert [r[:2] for r in results[1]] == [("pr", "dense"), ("sid", "dense"), ("pr", "fbank"), ("sid", "fbank")]
