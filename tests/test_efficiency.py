"""Efficiency metrics: measured counts equal the closed form; RTF and operator calls have the right structure."""

from functools import lru_cache

import pytest
import torch

from compress_lib.config import config_for_preset
from compress_lib.errors import CompressLibError
from compress_lib.efficiency import (
    COUNTING_CONVENTION,
    closed_form_macs_per_second,
    closed_form_num_params,
    count_parameters,
    log_mel_features,
    macs_per_second,
    operator_call_counts,
    operator_calls,
    profile_model,
    real_time_factor,
)
from compress_lib.efficiency.closed_form import attention_macs, melhubert_macs
from compress_lib.model import MelHuBERT


def melhubert(preset="smoke", frame_ms=20, seed=0, **overrides):
    torch.manual_seed(seed)
    return MelHuBERT(config_for_preset(preset, frame_ms, **overrides)).eval()


def pruned(frame_ms=20):
    """A structured-pruned smoke model with a zero-head layer and a zero-unit FFN."""
    cfg = config_for_preset("smoke", frame_ms).replace(layer_heads=[2, 0, 1, 2], layer_ffn_dims=[64, 0, 3, 64])
    torch.manual_seed(0)
    return MelHuBERT(cfg).eval()


def random_masks(model, density=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        name: torch.rand(p.shape, generator=g) < density
        for name, p in model.named_parameters()
        if any(k in name for k in (".q_proj.", ".v_proj.", ".fc1.", ".fc2.")) and p.numel()
    }


def relative_error(measured, expected):
    return abs(measured - expected) / expected


@lru_cache(maxsize=None)
def paper_model(frame_ms):
    """Paper-size MelHuBERT, built once per session (tests never modify it)."""
    return melhubert("paper", frame_ms)


MODELS = {
    "smoke-10ms": lambda: melhubert(frame_ms=10),
    "smoke-20ms": lambda: melhubert(frame_ms=20),
    "pruned-10ms": lambda: pruned(10),
    "pruned-20ms": lambda: pruned(20),
    "distilled-2-layers": lambda: melhubert(num_layers=2),
    "paper-10ms": lambda: paper_model(10),
    "paper-20ms": lambda: paper_model(20),
}
SLOW = pytest.mark.slow  # paper size: a 90 M-parameter model; seconds per forward on a busy 2-core machine
# (model, num_layers): every model whole, the smoke-size ones truncated to 2 layers as well
MAC_CASES = [pytest.param(n, None, marks=SLOW) if n.startswith("paper") else (n, None) for n in MODELS] + [
    (n, 2) for n in MODELS if not n.startswith("paper")
]


@pytest.mark.parametrize("name", MODELS)  # building is cheap: no slow mark
def test_parameter_count_equals_closed_form(name):
    model = MODELS[name]()
    counts = count_parameters(model)
    assert counts["params"] == closed_form_num_params(model) == model.num_parameters()
    assert counts["total"] == closed_form_num_params(model, include_heads=True) == model.num_parameters(True)
    assert counts["nonzero"] == counts["params"]  # no masks: nothing is masked
    assert sum(v for c, v in counts["components"].items() if c != "heads") == counts["params"]


PRIOR_WORK_MACS = {"paper-10ms": 9.2e9, "paper-20ms": 4.5e9}  # prior_work.md: "about 9.2 G / 4.5 G"


@pytest.mark.parametrize("name,num_layers", MAC_CASES)
def test_ptflops_macs_match_closed_form(name, num_layers):
    model = MODELS[name]()
    measured = macs_per_second(model, num_layers=num_layers)
    expected = closed_form_macs_per_second(model, num_layers=num_layers)
    assert relative_error(measured, expected) <= 0.01, (measured, expected)
    if name in PRIOR_WORK_MACS:
        assert relative_error(measured, PRIOR_WORK_MACS[name]) < 0.02


def test_attention_matmuls_are_counted():
    model = melhubert(frame_ms=10)
    cfg = model.cfg
    T = cfg.frames_per_second
    attention = sum(attention_macs(1, h, cfg.head_dim, T) for h in cfg.layer_heads)
    without = melhubert_macs(cfg, T) - attention
    assert macs_per_second(model) - without == attention > 0


def test_longer_inputs_cost_more_than_linearly_per_second():
    model = melhubert(frame_ms=10)
    assert macs_per_second(model, seconds=4) > macs_per_second(model, seconds=1)  # attention is quadratic in T
    assert macs_per_second(model, seconds=4) == closed_form_macs_per_second(model, seconds=4)


@pytest.mark.parametrize("make", [melhubert, pruned])
def test_masked_weights_count_no_macs_and_no_parameters(make):
    model = make()
    masks = random_masks(model)
    masked_out = sum(int((~m).sum()) for m in masks.values())
    counts = count_parameters(model, masks)
    assert counts["nonzero"] == counts["params"] - masked_out
    measured = macs_per_second(model, masks)
    assert measured == closed_form_macs_per_second(model, masks)
    # every masked entry of a linear layer saves one MAC per input frame
    frames = model.cfg.frames_per_second
    assert macs_per_second(model) - measured == frames * masked_out


def test_masks_count_by_mask_not_by_value():
    model = melhubert()
    masks = random_masks(model)
    # zero-initialised biases are unmasked parameters: they count as non-zero
    assert count_parameters(model)["nonzero"] == count_parameters(model)["params"]
    everything = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    assert count_parameters(model, everything)["nonzero"] == count_parameters(model)["params"]
    assert count_parameters(model, masks)["nonzero"] < count_parameters(model)["params"]


def test_bad_masks_raise_one_clear_error():
    model = melhubert()
    with pytest.raises(CompressLibError, match="another model"):
        count_parameters(model, {"layers.9.fc1.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(CompressLibError, match="shape"):
        macs_per_second(model, {"layers.0.fc1.weight": torch.ones(3, 3, dtype=torch.bool)})


def test_truncated_parameter_count():
    model = paper_model(20)
    counts = count_parameters(model, num_layers=6)
    assert counts["params"] == closed_form_num_params(model, num_layers=6)
    assert counts["total"] == count_parameters(model)["total"]  # the model still holds all 12 layers
    with pytest.raises(CompressLibError, match="num_layers"):
        count_parameters(model, num_layers=13)


def test_components_of_paper_model():
    c = count_parameters(paper_model(20))["components"]
    D, F = 768, 3072
    assert c["attention"] == 12 * 4 * (D * D + D)
    assert c["ffn"] == 12 * (2 * D * F + F + D)
    assert c["positional_conv"] == D * (D // 16) * 128 + D + 128
    assert c["front_end"] == 80 * D + D
    assert c["heads"] == D * 512 + 512
    assert c["time_reduction"] == c["other"] == 0


def test_counting_convention_names_what_is_counted():
    for phrase in ("QK^T", "AV", "positional embedding", "masked weight", "Not counted", "ptflops"):
        assert phrase in COUNTING_CONVENTION


# -- real-time factor ------------------------------------------------------------------------------------------
def test_real_time_factor_structure():
    model = melhubert()
    before = torch.get_num_threads()
    rtf = real_time_factor(model, seconds=1, batch=2, repeats=3, warmup=1, threads=1)
    assert torch.get_num_threads() == before  # restored
    assert rtf["threads"] == 1 and rtf["device"] == "cpu" and rtf["batch"] == 2 and rtf["seconds"] == 1
    assert len(rtf["times_s"]) == 3 and all(t > 0 for t in rtf["times_s"])
    lo, hi = rtf["spread"]
    assert 0 < lo <= rtf["median"] <= hi
    assert lo <= rtf["quartiles"][0] <= rtf["quartiles"][1] <= hi
    assert rtf["feature_median"] > 0  # MelHuBERT's log-Mel extraction is timed separately
    assert rtf["total_median"] == pytest.approx(rtf["median"] + rtf["feature_median"])
    assert not model.training


def test_real_time_factor_of_truncated_model_and_bad_arguments():
    model = melhubert()
    assert real_time_factor(model, seconds=1, repeats=1, warmup=0, num_layers=1)["median"] > 0
    with pytest.raises(CompressLibError):
        real_time_factor(model, seconds=0)
    with pytest.raises(CompressLibError):
        real_time_factor(model, seconds=1, batch=0)
    with pytest.raises(CompressLibError):
        real_time_factor(model, seconds=1, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(CompressLibError, match="CUDA"):
            real_time_factor(model, seconds=1, device="cuda")


def test_interleaved_real_time_factors_time_every_model_in_turns():
    from compress_lib.efficiency import interleaved_real_time_factors

    model, other = melhubert(), melhubert()
    other.train()
    before = torch.get_num_threads()
    results = interleaved_real_time_factors([(model, None), (other, 1)], seconds=1, repeats=3, warmup=1, threads=1)
    assert torch.get_num_threads() == before and other.training  # thread count and mode restored
    assert len(results) == 2
    for rtf in results:
        assert rtf["threads"] == 1 and rtf["repeats"] == 3 and len(rtf["times_s"]) == 3
        assert 0 < rtf["spread"][0] <= rtf["median"] <= rtf["spread"][1]
    with pytest.raises(CompressLibError):
        interleaved_real_time_factors([(model, None)], seconds=0)
    with pytest.raises(CompressLibError):
        interleaved_real_time_factors([(model, None)], seconds=1, repeats=0)


@pytest.mark.parametrize("frame_ms,shape", [(10, (2, 98, 40)), (20, (2, 49, 80))])
def test_log_mel_features(frame_ms, shape):
    feats = log_mel_features(0.1 * torch.randn(2, 16000), frame_ms)
    assert feats.shape == shape
    assert torch.isfinite(feats).all()


# -- operator calls --------------------------------------------------------------------------------------------
def test_operator_calls_grow_with_layers():
    model = melhubert()  # 4 identical layers
    one, two = operator_calls(model, num_layers=1), operator_calls(model, num_layers=2)
    counts = operator_call_counts(model)
    full = counts["cpu_operators"]
    assert 0 < one < two < full
    assert full - two == 2 * (two - one)  # every layer makes the same calls
    assert full < counts["cpu_operators_all"]
    assert counts["cuda_kernels"] is None


def test_profile_model_keys():
    model = melhubert()
    masks = random_masks(model)
    report = profile_model(model, masks=masks, seconds=1, repeats=2, warmup=1)
    keys = ("params", "nonzero_params", "macs_per_second", "real_time_factor", "operator_calls", "device", "threads")
    for key in keys:
        assert key in report
    assert report["nonzero_params"] < report["params"] < report["params_with_heads"]
    assert report["macs_per_second"] == closed_form_macs_per_second(model, masks)
    assert report["real_time_factor"] > 0 and report["operator_calls"] > 0


def test_interleaved_timing_and_paired_ratio():
    from compress_lib.efficiency.runtime import paired_ratio, time_interleaved

    calls = []
    times = time_interleaved([lambda: calls.append("a"), lambda: calls.append("b")], warmup=1, repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three rounds taking turns
    assert [len(t) for t in times] == [3, 3] and all(x >= 0 for t in times for x in t)
    assert paired_ratio([1.0, 2.0, 4.0], [3.0, 4.0, 4.0]) == 2.0  # median of 3, 2, 1
    with pytest.raises(CompressLibError):
        time_interleaved([lambda: None], repeats=0)


def test_the_busy_machine_warning_names_the_cpus_other_processes_used(monkeypatch):
    from compress_lib import notebook

    monkeypatch.setattr(notebook.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(notebook, "other_processes_cpu", lambda sample_s=1.0: 1.2)
    assert "other processes used 1.2 of 2 CPUs" in notebook.busy_machine_warning()
    monkeypatch.setattr(notebook, "other_processes_cpu", lambda sample_s=1.0: 0.3)
    assert notebook.busy_machine_warning() is None


def test_other_processes_cpu_sees_a_process_that_spins():
    import subprocess
    import sys

    from compress_lib.notebook import other_processes_cpu

    spin = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"
    spinner = subprocess.Popen([sys.executable, "-c", spin])
    try:
        assert other_processes_cpu(1.0) > 0.3  # one CPU kept busy (more on a busy machine, never less than a share)
    finally:
        spinner.kill()
        spinner.wait()
