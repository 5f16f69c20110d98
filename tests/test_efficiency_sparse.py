"""Sparse (CSR) execution of weight-pruned models: same outputs as the dense masked model."""

import pytest
import torch
from torch import nn

from compress_lib.config import config_for_preset
from compress_lib.efficiency.inputs import example_inputs
from compress_lib.efficiency.sparse import (
    CSRLinear,
    apply_masks,
    crossover_density,
    magnitude_masks,
    sparse_vs_dense,
    sparsify,
)
from compress_lib.model import MelHuBERT


def model():
    torch.manual_seed(0)
    return MelHuBERT(config_for_preset("smoke", 20)).eval()


def test_csr_linear_equals_masked_dense_linear():
    torch.manual_seed(0)
    linear = nn.Linear(16, 24)
    with torch.no_grad():
        linear.weight.mul_(torch.rand_like(linear.weight) < 0.2)
    csr = CSRLinear(linear)
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(csr(x), linear(x))
    assert csr.density == pytest.approx(float((linear.weight != 0).float().mean()))


@pytest.mark.parametrize("density", [0.5, 0.1])
def test_magnitude_masks_keep_the_largest_weights(density):
    m = model()
    masks = magnitude_masks(m, density)
    kept = sum(int(mask.sum()) for mask in masks.values())
    total = sum(mask.numel() for mask in masks.values())
    assert abs(kept / total - density) < 0.01
    assert all(".self_attn." in n or ".fc1." in n or ".fc2." in n for n in masks)
    params = dict(m.named_parameters())
    smallest_kept = min(params[n].abs()[mask].min() for n, mask in masks.items() if mask.any())
    largest_dropped = max(params[n].abs()[~mask].max() for n, mask in masks.items() if (~mask).any())
    assert smallest_kept >= largest_dropped


def test_sparsified_model_matches_dense_masked_model():
    m = model()
    masks = magnitude_masks(m, 0.2)
    sparse = sparsify(m, masks)
    dense = model()
    apply_masks(dense, masks)
    inputs = example_inputs(m, seconds=1, batch=2)
    with torch.no_grad():
        want = dense(**inputs).hidden_states
        got = sparse(**inputs).hidden_states
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert isinstance(sparse.layers[0].fc1, CSRLinear) and isinstance(m.layers[0].fc1, nn.Linear)  # a copy


def test_sparse_vs_dense_rows():
    rows = sparse_vs_dense(model(), densities=(0.5, 0.1), seconds=1, repeats=1, warmup=0, threads=1)
    assert [r["density"] for r in rows] == [0.5, 0.1]
    for r in rows:
        assert r["dense_s"] > 0 and r["sparse_s"] > 0
        assert r["speedup"] == pytest.approx(r["dense_s"] / r["sparse_s"])  # one turn: the ratio of the two times
        assert 0 < r["macs_ratio"] < 1
    assert rows[1]["macs_ratio"] < rows[0]["macs_ratio"]


def test_crossover_density():
    rows = [{"density": 0.5, "speedup": 0.4}, {"density": 0.3, "speedup": 1.1}, {"density": 0.1, "speedup": 3.0}]
    assert crossover_density(rows) == 0.3
    assert crossover_density(rows[:1]) is None
