"""The zoo of compared models: published parameter counts, MACs against the closed form, hidden states, ARM reuse."""

from functools import lru_cache

import pytest
import torch

from compress_lib.errors import CompressLibError
from compress_lib.efficiency import (
    closed_form_macs_per_second,
    closed_form_num_params,
    count_parameters,
    macs_per_second,
)
from compress_lib.zoo import (
    PUBLISHED_PARAMS,
    PUBLISHED_RESULTS,
    ZOO,
    ExplicitSelfAttention,
    MapReuseLayer,
    WavEncoder,
    WavEncoderConfig,
    build_zoo_model,
    frames_per_second,
    thin_cnn,
)


@lru_cache(maxsize=None)
def zoo_model(name):
    """Each full-size zoo model is built once per session (tests never modify it)."""
    return build_zoo_model(name)


def tiny(**changes):
    """A small waveform encoder (LayerNorm CNN, so padding cannot leak through GroupNorm statistics)."""
    sizes = dict(conv_layers=[(16, 10, 5), (16, 3, 2), (16, 2, 2)], extractor_mode="layer_norm", embed_dim=32,
                 num_layers=4, num_heads=4, ffn_dim=48, conv_pos=8, conv_pos_groups=4)
    sizes.update(changes)
    torch.manual_seed(0)
    return WavEncoder(WavEncoderConfig("tiny", **sizes)).eval()


@pytest.mark.parametrize("name", ZOO)
def test_parameter_count_within_2_percent_of_published(name):
    model = zoo_model(name)
    counts = count_parameters(model)
    assert abs(counts["total"] / PUBLISHED_PARAMS[name] - 1) < 0.02, counts["total"]
    assert counts["total"] == closed_form_num_params(model, include_heads=True)
    assert counts["params"] == closed_form_num_params(model)
    assert counts["params"] + counts["components"]["heads"] == counts["total"]


WIDE_CNN = {"hubert-base", "lighthubert-small"}  # seconds per forward on a busy 2-core machine


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in WIDE_CNN else n for n in ZOO])
def test_ptflops_macs_match_closed_form(name):
    model = zoo_model(name)
    measured, expected = macs_per_second(model), closed_form_macs_per_second(model)
    assert abs(measured - expected) / expected <= 0.01, (measured, expected)


def test_wide_wav_front_ends_dominate_the_macs():
    # the paper: LightHuBERT's convolutions are about 64% of its MACs (we count 68%); the thin CNN of
    # FitHuBERT / ARMHuBERT / STaRHuBERT costs about a third of HuBERT's
    from compress_lib.efficiency.closed_form import cnn_macs

    def front_end_macs(name):
        return cnn_macs(zoo_model(name).cfg, 1, 16000)[0]

    assert 0.6 < front_end_macs("lighthubert-small") / closed_form_macs_per_second(zoo_model("lighthubert-small")) < 0.75
    assert front_end_macs("starhubert") < 0.4 * front_end_macs("hubert-base")


HALF_SECOND = [("hubert-base", 24, 12), ("distilhubert", 24, 2), ("fithubert", 12, 12)]  # (model, frames, layers)


@pytest.mark.parametrize("name,frames,layers", HALF_SECOND)
def test_hidden_states(name, frames, layers):
    model = zoo_model(name)
    with torch.no_grad():
        hidden = model(0.1 * torch.randn(2, 8000))  # half a second
    assert len(hidden) == layers + 1
    assert all(h.shape == (2, frames, model.cfg.embed_dim) for h in hidden)
    assert model.cfg.num_frames(8000) == frames
    assert frames_per_second(model.cfg) == (25 if name == "fithubert" else 50)
    with torch.no_grad():
        assert len(model(0.1 * torch.randn(1, 8000), num_layers=1)) == 2


def test_armhubert_reuses_attention_maps():
    model = zoo_model("armhubert")
    for i, layer in enumerate(model.layers):
        has_qk = hasattr(layer.self_attn, "q_proj") and hasattr(layer.self_attn, "k_proj")
        assert has_qk == (i % 2 == 0)  # every second layer has no q/k projections
    produced, received = {}, {}

    def keep_output(module, args, out):
        produced["map"] = out[1]

    def keep_input(module, args, out):
        received["map"] = args[2]

    hooks = [model.layers[0].self_attn.register_forward_hook(keep_output),
             model.layers[1].self_attn.register_forward_hook(keep_input)]
    try:
        with torch.no_grad():
            model(0.1 * torch.randn(1, 8000))
    finally:
        for hook in hooks:
            hook.remove()
    assert received["map"] is produced["map"]  # layer 1 applies layer 0's attention probabilities


def test_reusing_attention_applies_the_given_map():
    torch.manual_seed(0)
    attn = ExplicitSelfAttention(8, 2, 4, dropout=0.0, computes_map=False).eval()
    x = torch.randn(1, 5, 8)
    probs = torch.softmax(torch.randn(1, 2, 5, 5), -1)
    out, used = attn(x, attn_probs=probs)
    v = attn.v_proj(x).view(1, 5, 2, 4).transpose(1, 2)
    want = attn.out_proj((probs @ v).transpose(1, 2).reshape(1, 5, 8))
    torch.testing.assert_close(out, want)
    assert used is probs
    with pytest.raises(CompressLibError, match="attention map"):
        attn(x)


def test_explicit_attention_equals_sdpa_layer():
    """The map-computing layer is the same post-LN layer as MelHuBERT's (SDPA) one."""
    model = tiny(reuse_pattern=[True, False, True, False])
    layer = model.layers[0]
    assert isinstance(layer, MapReuseLayer)
    plain = tiny().layers[0]
    state = {k: v for k, v in layer.state_dict().items()}
    plain.load_state_dict(state)
    x = torch.randn(2, 7, 32)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    with torch.no_grad():
        torch.testing.assert_close(layer(x, pad)[0], plain(x, pad), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("changes", [{}, {"time_reduction": 2}, {"reuse_pattern": [True, False, True, False]}])
def test_padded_batch_matches_single_utterances(changes):
    model = tiny(**changes)
    long, short = 0.1 * torch.randn(1, 3000), 0.1 * torch.randn(1, 2000)
    batch = torch.cat([long, torch.nn.functional.pad(short, (0, 1000))])
    padding = torch.zeros(2, 3000, dtype=torch.bool)
    padding[1, 2000:] = True
    with torch.no_grad():
        together = model(batch, padding_mask=padding)
        alone = model(short)
    n = int(model.output_lengths(torch.tensor([2000]))[0])
    assert alone[-1].shape[1] == n
    for a, b in zip(alone, together):
        torch.testing.assert_close(b[1:2, :n], a, atol=1e-4, rtol=1e-4)


def test_bad_inputs_raise_one_clear_error():
    model = tiny()
    with pytest.raises(CompressLibError, match="batch, samples"):
        model(torch.randn(1, 1, 3000))
    with pytest.raises(CompressLibError, match="at least"):
        model(torch.randn(1, 5))
    with pytest.raises(CompressLibError, match="num_layers"):
        model(torch.randn(1, 3000), num_layers=9)
    with pytest.raises(CompressLibError, match="armhubert"):
        build_zoo_model("nope")
    with pytest.raises(CompressLibError, match="reuse_pattern"):
        WavEncoderConfig("x", thin_cnn(64), embed_dim=64, num_heads=4, num_layers=2, reuse_pattern=[False, True])


def test_build_is_seeded():
    a, b = build_zoo_model("distilhubert", seed=3), build_zoo_model("distilhubert", seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_published_results_are_labelled_as_cited():
    assert set(PUBLISHED_RESULTS) == set(ZOO) == set(PUBLISHED_PARAMS)
    for name, row in PUBLISHED_RESULTS.items():
        assert row["cited"] is True and "cited" in row["source"]
        assert 0 < row["per"] < 100 and 0 < row["sid_acc"] < 100
        assert row["params"] == PUBLISHED_PARAMS[name]
