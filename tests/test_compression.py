"""Exactness of the compression methods' score -> select -> apply steps on a tiny MelHuBERT."""

import copy

import pytest
import torch

from compress_lib.checkpoint import load_checkpoint, save_checkpoint
from compress_lib.compression.combined import split_evenly
from compress_lib.compression.context import EmaConvergence
from compress_lib.compression.surgery import head_feature_index, slice_linear
from compress_lib.compression.distill import distillation_loss, make_student
from compress_lib.compression.ffn import ffn_totals, ffn_unit_scores, prune_ffn, select_units
from compress_lib.compression.heads import (
    gradient_head_scores, head_totals, l1_head_scores, normalise_per_layer, prune_heads, select_heads,
)
from compress_lib.compression.truncate import truncate
from compress_lib.compression.weight import (
    mask_density, prunable_parameters, prune_weights, schedule_densities,
)
from compress_lib.config import MelHuBERTConfig
from compress_lib.model import MelHuBERT
from compress_lib.objective import collate


def tiny_model(seed=0, **kw) -> MelHuBERT:
    torch.manual_seed(seed)
    cfg = MelHuBERTConfig.uniform(num_layers=3, embed_dim=24, num_heads=3, ffn_dim=20, num_clusters=7, conv_pos=8,
                                  conv_pos_groups=4, frame_ms=20, **kw)
    model = MelHuBERT(cfg).eval()
    with torch.no_grad():  # non-zero biases, so that slicing a bias wrongly shows
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def batch(seed=0, lengths=(17, 11), feat_dim=80, clusters=7):
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(n, feat_dim, generator=g) for n in lengths]
    targets = [torch.randint(0, clusters, (n,), generator=g) for n in lengths]
    import numpy as np

    return collate(feats, targets, 0.3, 3, np.random.default_rng(seed))


def outputs(model, b):
    with torch.no_grad():
        out = model(b.feats, padding_mask=b.padding_mask)
    return torch.stack(out.hidden_states), out.logits


def assert_same_outputs(a, b, b_, atol=1e-5):
    ha, la = outputs(a, b_)
    hb, lb = outputs(b, b_)
    valid = ~b_.padding_mask
    assert torch.allclose(ha[:, valid], hb[:, valid], atol=atol)
    assert torch.allclose(la[valid], lb[valid], atol=atol)


# -- slicing -------------------------------------------------------------------------------------------------------
def test_slice_linear_keeps_the_chosen_rows_and_columns():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 5)
    x = torch.randn(4, 6)
    rows = slice_linear(lin, 0, [4, 1])
    assert rows.weight.shape == (2, 6) and torch.allclose(rows(x), lin(x)[:, [4, 1]])
    cols = slice_linear(lin, 1, [0, 2, 5])
    assert cols.weight.shape == (5, 3)
    assert torch.allclose(cols(x[:, [0, 2, 5]]), x[:, [0, 2, 5]] @ lin.weight[:, [0, 2, 5]].T + lin.bias)
    empty = slice_linear(lin, 1, [])
    assert empty.weight.shape == (5, 0) and torch.allclose(empty(x[:, :0]), lin.bias.expand(4, 5))
    with pytest.raises(ValueError):
        slice_linear(lin, 2, [0])


def test_head_feature_index():
    assert head_feature_index([0, 2], 3).tolist() == [0, 1, 2, 6, 7, 8]


# -- heads ------------------------------------------------------------------------------------------------------------
def zero_heads(model, remove):
    """The reference: the same model with the heads' output-projection columns set to zero."""
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for layer, heads in remove.items():
            a = ref.layers[layer].self_attn
            a.out_proj.weight[:, head_feature_index(heads, a.head_dim)] = 0.0
    return ref


@pytest.mark.parametrize("remove", [{0: [1]}, {0: [0, 2], 2: [1]}, {1: [0, 1, 2]}, {0: [2], 1: [0, 1, 2], 2: [0, 1]}])
def test_removing_heads_equals_zeroing_them(remove):
    model = tiny_model()
    ref = zero_heads(model, remove)
    before = model.num_parameters()
    cfg = prune_heads(model, remove)
    assert cfg.layer_heads == [3 - len(remove.get(i, [])) for i in range(3)]
    assert model.cfg == cfg
    removed = sum(len(h) for h in remove.values())
    hd, D = cfg.head_dim, cfg.embed_dim
    assert before - model.num_parameters() == removed * (3 * (D * hd + hd) + hd * D)  # q/k/v rows + out columns
    assert_same_outputs(model, ref, batch())


def test_gradient_head_scores_match_gate_gradients():
    """I_h = sum_t |dL/d xi_{h,t}| for a gate xi multiplying head h's context at frame t (independent route)."""
    model = tiny_model()
    b = batch(seed=3, clusters=7)
    scores = gradient_head_scores(model, [b])
    assert all(p.grad is None for p in model.parameters())  # scoring leaves no gradients behind
    from compress_lib.objective import masked_prediction_loss

    gates, handles = [], []
    for layer in model.layers:
        a = layer.self_attn
        B, T = b.feats.shape[:2]
        gate = torch.ones(B, T, a.num_heads, requires_grad=True)
        gates.append(gate)

        def hook(module, inputs, gate=gate, a=a):
            (x,) = inputs  # (B, T, H * hd)
            return (x * gate.repeat_interleave(a.head_dim, dim=-1),)
        handles.append(a.out_proj.register_forward_pre_hook(hook))
    loss, _ = masked_prediction_loss(model, b)
    loss.backward()
    for h in handles:
        h.remove()
    valid = (~b.padding_mask).float()[..., None]
    for s, gate in zip(scores, gates):
        expected = (gate.grad.abs() * valid).sum(dim=(0, 1))
        assert torch.allclose(s, expected, rtol=1e-4, atol=1e-8)


def test_select_heads_ranks_globally_and_keeps_each_layers_best():
    scores = [torch.tensor([0.1, 0.9, 0.2]), torch.tensor([0.05]), torch.tensor([0.3, 0.15, 0.8])]
    assert select_heads(scores, 3) == {0: [0, 2], 2: [1]}
    assert select_heads(scores, 100) == {0: [0, 2], 2: [0, 1]}  # only the best of each layer survives
    assert select_heads(scores, 1, keep_best=False) == {1: [0]}
    normed = normalise_per_layer(scores)
    assert all(torch.isclose(s.norm(), torch.tensor(1.0)) for s in normed)


def test_l1_head_scores():
    model = tiny_model()
    a = model.layers[1].self_attn
    idx = head_feature_index([2], a.head_dim)
    with torch.no_grad():
        expected = sum(float(p.weight[idx].abs().sum() + p.bias[idx].abs().sum()) for p in (a.q_proj, a.k_proj, a.v_proj))
        expected += float(a.out_proj.weight[:, idx].abs().sum())
    assert l1_head_scores(model)[1][2].item() == pytest.approx(expected, rel=1e-5)


def test_head_totals():
    assert head_totals([3, 3, 3], 2) == [7, 5, 3]  # keep-best: one head per layer stays
    assert head_totals([3, 3, 3], 2, keep_best=False) == [7, 5, 3, 1, 0]
    assert head_totals([12] * 12, 12) == [132 - 12 * i for i in range(11)]  # the paper: 144 -> 12 in 11 steps


# -- ffn --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 20])
def test_removing_ffn_units_equals_zeroing_them(n):
    model = tiny_model()
    remove = select_units(ffn_unit_scores(model), n)
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for layer, units in remove.items():
            ref.layers[layer].fc2.weight[:, units] = 0.0
    cfg = prune_ffn(model, remove)
    assert cfg.layer_ffn_dims == [20 - n] * 3
    assert_same_outputs(model, ref, batch())


def test_ffn_unit_score_formula_and_selection():
    model = tiny_model()
    layer = model.layers[2]
    i = 5
    expected = layer.fc1.weight[i].abs().sum() + layer.fc1.bias[i].abs() + layer.fc2.weight[:, i].abs().sum()
    scores = ffn_unit_scores(model)
    assert scores[2][i].item() == pytest.approx(expected.item(), rel=1e-6)
    chosen = select_units(scores, 4)[2]
    assert sorted(chosen) == sorted(torch.argsort(scores[2])[:4].tolist())
    assert ffn_totals([3072] * 12, 128)[19] == 512 * 12  # the paper: 3072 -> 512 in 20 steps


# -- weight pruning ---------------------------------------------------------------------------------------------------
def test_schedule_is_the_papers():
    d = schedule_densities()
    assert d[:9] == [0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.325, 0.3]
    assert d[9:11] == [0.29, 0.28] and d[28] == 0.1 and d[29] == 0.095 and d[-1] == 0.05 and len(d) == 39


def test_weight_pruning_has_exactly_the_requested_density_and_only_shrinks():
    model = tiny_model()
    params = prunable_parameters(model)
    total = sum(p.numel() for p in params.values())
    assert {n.split(".", 2)[2] for n in params} == {f"{m}.{w}" for m in
            ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2")
            for w in ("weight", "bias")}
    masks = None
    for density in (0.8, 0.5, 0.33, 0.05):
        # a pruned weight growing back would break monotonicity: perturb the survivors first
        with torch.no_grad():
            for p in params.values():
                p.add_(0.01 * torch.randn_like(p))
        old = masks
        masks = prune_weights(model, masks, density)
        kept = sum(int(m.sum()) for m in masks.values())
        assert kept == round(density * total)
        assert mask_density(masks, model) == pytest.approx(kept / total)
        for name, p in params.items():
            assert torch.all(p[~masks[name]] == 0)
            if old is not None:
                assert not torch.any(masks[name] & ~old[name])  # nothing pruned before comes back
    # the survivors are the largest magnitudes among the entries alive before the last step
    alive = torch.cat([p.detach().abs()[masks[n]] for n, p in params.items()])
    assert alive.min() > 0


def test_weight_pruned_checkpoint_reloads(tmp_path):
    model = tiny_model()
    masks = prune_weights(model, None, 0.4)
    save_checkpoint(tmp_path / "w.pt", model, masks)
    ckpt = load_checkpoint(tmp_path / "w.pt")
    assert set(ckpt.masks) == set(masks) and all(torch.equal(ckpt.masks[n], masks[n]) for n in masks)
    assert_same_outputs(model, ckpt.model, batch(), atol=0)


def test_structurally_pruned_checkpoint_reloads(tmp_path):
    model = tiny_model()
    prune_heads(model, {0: [0], 1: [0, 1, 2]})
    prune_ffn(model, {0: [1, 2, 3], 2: list(range(20))})
    save_checkpoint(tmp_path / "s.pt", model)
    ckpt = load_checkpoint(tmp_path / "s.pt")
    assert ckpt.config.layer_heads == [2, 0, 3] and ckpt.config.layer_ffn_dims == [17, 20, 0]
    assert_same_outputs(model, ckpt.model, batch(), atol=0)


# -- distillation and truncation -------------------------------------------------------------------------------------
def test_distillation_loss_is_zero_for_a_copy_of_the_teacher_and_positive_otherwise():
    teacher = tiny_model()
    b = batch()
    loss, _ = distillation_loss(copy.deepcopy(teacher).eval(), teacher, b)
    assert abs(float(loss.detach())) < 1e-6
    student = make_student(teacher, 2, "random", seed=0).eval()
    loss, _ = distillation_loss(student, teacher, b, temperature=2.0)
    assert float(loss.detach()) > 1e-4
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.final_proj.weight.grad is not None


def test_student_initialised_from_the_teacher():
    teacher = tiny_model()
    student = make_student(teacher, 2, "teacher", seed=0)
    assert student.cfg.num_layers == 2 and student.cfg.embed_dim == teacher.cfg.embed_dim
    for i in range(2):
        for (n, p), (_, q) in zip(student.layers[i].state_dict().items(), teacher.layers[i].state_dict().items()):
            assert torch.equal(p, q), n
    assert torch.equal(student.pre_extract_proj.weight, teacher.pre_extract_proj.weight)
    random = make_student(teacher, 2, "random", seed=0)
    assert not torch.equal(random.layers[0].fc1.weight, teacher.layers[0].fc1.weight)
    assert torch.equal(random.layers[0].fc1.weight, make_student(teacher, 2, "random", seed=0).layers[0].fc1.weight)


def test_truncation_equals_running_the_first_layers():
    teacher = tiny_model()
    b = batch()
    first2 = truncate(teacher, 2)
    assert first2.cfg.num_layers == 2
    with torch.no_grad():
        ref = teacher(b.feats, padding_mask=b.padding_mask, num_layers=2)
        out = first2(b.feats, padding_mask=b.padding_mask)
    for x, y in zip(ref.hidden_states, out.hidden_states):
        assert torch.equal(x, y)
    assert torch.equal(ref.logits, out.logits)


# -- policies ---------------------------------------------------------------------------------------------------------
def test_ema_convergence():
    stop = EmaConvergence(decay=0.5, tolerance=0.01, window=3)
    log = [{"loss": 5.0 - i} for i in range(5)]  # still falling
    assert not stop(log)
    log += [{"loss": 0.0}] * 12  # flat: the EMA settles
    assert stop(log)
    assert EmaConvergence(0.5, 0.01, 3)(log) and not EmaConvergence(0.5, 0.01, 3)(log[:4])
    assert not EmaConvergence(0.5, 0.01, 3)([{"loss": 1.0}] * 3)  # shorter than the window


def test_split_evenly():
    assert split_evenly(9, 2) == [5, 4]
    assert split_evenly(2560, 5) == [512] * 5
    assert sum(split_evenly(7, 3)) == 7
