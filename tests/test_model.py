"""MelHuBERT: parameter count against the closed form, hidden states, truncation, pruned shapes, padding."""

import pytest
import torch
import torch.nn.functional as F

from compress_lib.config import MelHuBERTConfig, config_for_preset
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT


def closed_form_parameters(cfg: MelHuBERTConfig) -> int:
    """Parameters without the cluster head, counted from the architecture's shapes."""
    D, hd = cfg.embed_dim, cfg.head_dim
    n = cfg.feat_dim * D + D  # input projection
    n += D * (D // cfg.conv_pos_groups) * cfg.conv_pos + cfg.conv_pos + D  # weight-normed conv: v, g, bias
    n += 2 * D  # encoder LayerNorm
    for heads, ffn in zip(cfg.layer_heads, cfg.layer_ffn_dims):
        inner = heads * hd
        n += 3 * (D * inner + inner) + inner * D + D  # q, k, v, out projections
        n += D * ffn + ffn + ffn * D + D  # fc1, fc2
        n += 4 * D  # two LayerNorms
    return n


@pytest.mark.parametrize("frame_ms, millions", [(20, 89.84), (10, 89.81)])
def test_paper_size_parameter_count(frame_ms, millions):
    cfg = config_for_preset("paper", frame_ms)
    model = MelHuBERT(cfg)
    assert model.num_parameters() == closed_form_parameters(cfg)
    assert round(model.num_parameters() / 1e6, 2) == millions
    assert model.num_parameters(include_head=True) == model.num_parameters() + 768 * 512 + 512


def test_pruned_shapes_parameter_count_and_forward():
    cfg = MelHuBERTConfig(frame_ms=10, embed_dim=32, head_dim=8, layer_heads=[4, 0, 2], layer_ffn_dims=[64, 16, 0],
                          conv_pos=8, conv_pos_groups=4, num_clusters=10)
    model = MelHuBERT(cfg).eval()
    assert model.num_parameters() == closed_form_parameters(cfg)
    out = model(torch.randn(2, 30, 40))
    assert len(out.hidden_states) == 4 and out.logits.shape == (2, 30, 10)
    assert all(torch.isfinite(h).all() for h in out.hidden_states)


def test_hidden_states_and_first_k_layers():
    model = MelHuBERT(config_for_preset("smoke", 20)).eval()
    x = torch.randn(2, 25, 80)
    full = model(x)
    assert len(full.hidden_states) == model.cfg.num_layers + 1
    part = model(x, num_layers=2, compute_logits=False)
    assert len(part.hidden_states) == 3 and part.logits is None
    for a, b in zip(part.hidden_states, full.hidden_states):
        torch.testing.assert_close(a, b)
    with pytest.raises(CompressLibError):
        model(x, num_layers=model.cfg.num_layers + 1)
    with pytest.raises(CompressLibError, match="frame-ms"):
        model(torch.randn(2, 25, 40))


def test_twelve_layers_give_thirteen_hidden_states():
    cfg = MelHuBERTConfig.uniform(num_layers=12, embed_dim=32, num_heads=2, ffn_dim=32, conv_pos=8, conv_pos_groups=4)
    assert len(MelHuBERT(cfg).eval()(torch.randn(1, 12, 80)).hidden_states) == 13


def test_padding_does_not_change_valid_frames():
    model = MelHuBERT(config_for_preset("smoke", 10)).eval()
    x = torch.randn(1, 20, 40)
    alone = model(x).hidden_states
    padded = torch.cat([x, torch.randn(1, 7, 40)], dim=1)
    pad = torch.zeros(1, 27, dtype=torch.bool)
    pad[:, 20:] = True
    together = model(padded, padding_mask=pad).hidden_states
    assert (together[0][:, 20:] == 0).all()  # projected input is zero at padding (as in the public code)
    for a, b in zip(alone, together):
        torch.testing.assert_close(a, b[:, :20], atol=1e-5, rtol=1e-5)


def test_frame_mask_replaces_input_frames_by_zeros():
    model = MelHuBERT(config_for_preset("smoke", 20)).eval()
    x = torch.randn(1, 10, 80)
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, 3:6] = True
    masked = model(x, frame_mask=mask).hidden_states[0]
    zeroed = model(x.masked_fill(mask[..., None], 0.0)).hidden_states[0]
    torch.testing.assert_close(masked, zeroed)
    torch.testing.assert_close(masked[0, 3], model.pre_extract_proj.bias)


def test_attention_goes_through_sdpa(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    model = MelHuBERT(config_for_preset("smoke", 20)).eval()
    model(torch.randn(1, 8, 80))
    assert len(calls) == model.cfg.num_layers


def test_head_context_is_captured_with_gradient():
    model = MelHuBERT(config_for_preset("smoke", 20))
    attn = model.layers[0].self_attn
    attn.capture_context = True
    model(torch.randn(2, 9, 80)).logits.sum().backward()
    assert attn.context.shape == (2, model.cfg.layer_heads[0], 9, model.cfg.head_dim)
    assert attn.context.grad is not None


def test_config_rejects_bad_shapes():
    with pytest.raises(CompressLibError, match="layer_ffn_dims"):
        MelHuBERTConfig(layer_heads=[2, 2], layer_ffn_dims=[8])
    with pytest.raises(CompressLibError, match="frame rate"):
        MelHuBERTConfig(frame_ms=15)
    with pytest.raises(CompressLibError, match="unknown MelHuBERT config keys"):
        MelHuBERTConfig.from_dict({"frame_ms": 20, "colour": "red"})
