"""`import-checkpoint`: a checkpoint in the public MelHuBERT code's layout converts to the same hidden states.

The tests build small checkpoints in the public layout themselves (dict keys, config keys, state-dict names,
weight norm as weight_g / weight_v, an argparse.Namespace under `Args`) and compare the converted model with an
independent, functional re-implementation of the public code's forward pass.
"""

import argparse
import math

import pytest
import torch
import torch.nn.functional as F

from compress_lib.checkpoint import load_checkpoint
from compress_lib.cli import main
from compress_lib.errors import CompressLibError
from compress_lib.import_checkpoint import import_public_checkpoint

D, HEAD_DIM, FFN, LAYERS, K, GROUPS, CLUSTERS = 32, 8, 48, 3, 8, 4, 10
CONFIG = dict(feat_emb_dim=80, pos_emb_type="conv", pos_conv_depth=1, conv_pos=K, conv_pos_groups=GROUPS,
              encoder_layers=LAYERS, encoder_embed_dim=D, encoder_ffn_embed_dim=FFN,
              encoder_attention_heads=D // HEAD_DIM, activation_fn="gelu", layer_norm_first=False,
              attention_type="original", num_cluster=CLUSTERS, final_dim=40, mask_prob=0.7, mask_length=5,
              mask_selection="static", learnable_mask_emb=False, mask_before_proj=True, dropout=0.1,
              attention_dropout=0.1, activation_dropout=0.1, encoder_layerdrop=0.0)


def public_state_dict(feat_dim=80, heads=(4, 4, 4), seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    sd = {"pre_extract_proj.weight": r(D, feat_dim), "pre_extract_proj.bias": r(D),
          "encoder.pos_conv.0.bias": r(D), "encoder.pos_conv.0.weight_g": r(1, 1, K).abs() + 0.5,
          "encoder.pos_conv.0.weight_v": r(D, D // GROUPS, K),
          "encoder.layer_norm.weight": 1 + r(D), "encoder.layer_norm.bias": r(D)}
    for i, h in enumerate(heads):
        p = f"encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj"):
            sd[p + f"self_attn.{name}.weight"], sd[p + f"self_attn.{name}.bias"] = r(h * HEAD_DIM, D), r(h * HEAD_DIM)
        sd[p + "self_attn.out_proj.weight"], sd[p + "self_attn.out_proj.bias"] = r(D, h * HEAD_DIM), r(D)
        sd[p + "self_attn_layer_norm.weight"], sd[p + "self_attn_layer_norm.bias"] = 1 + r(D), r(D)
        sd[p + "fc1.weight"], sd[p + "fc1.bias"] = r(FFN, D), r(FFN)
        sd[p + "fc2.weight"], sd[p + "fc2.bias"] = r(D, FFN), r(D)
        sd[p + "final_layer_norm.weight"], sd[p + "final_layer_norm.bias"] = 1 + r(D), r(D)
    sd["final_proj.weight"], sd["final_proj.bias"] = r(CLUSTERS, D), r(CLUSTERS)
    return sd


def save_public(path, sd, config=CONFIG, key="melhubert", **extra):
    torch.save({"model": sd, "Upstream_Config": {key: dict(config)}, "Optimizer": {"state": {}, "param_groups": []},
                "Step": 1234, "Args": argparse.Namespace(mode="melhubert", seed=1337), "Runner": {"n_epochs": 200},
                **extra}, path)


def reference_hidden_states(sd: dict, feats: torch.Tensor, valid: torch.Tensor) -> list[torch.Tensor]:
    """The public code's forward at inference, written out with plain tensor operations.

    valid: (B, T) True at real frames (the public code's `pad_mask` convention).
    """
    def linear(x, name):
        return x @ sd[name + ".weight"].T + sd[name + ".bias"]

    def layer_norm(x, name):
        return F.layer_norm(x, (D,), sd[name + ".weight"], sd[name + ".bias"], eps=1e-5)

    x = linear(feats, "pre_extract_proj")
    x = x * valid[..., None]  # x[padding_mask] = 0
    hidden = [x]
    v, gain = sd["encoder.pos_conv.0.weight_v"], sd["encoder.pos_conv.0.weight_g"]
    weight = gain * v / v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()  # weight norm over dim 2
    y = F.conv1d(x.transpose(1, 2), weight, sd["encoder.pos_conv.0.bias"], padding=K // 2, groups=GROUPS)
    y = y[:, :, :-1]  # SamePad: an even kernel gives one frame too many
    x = layer_norm(x + F.gelu(y).transpose(1, 2), "encoder.layer_norm")
    B, T, _ = x.shape
    for i in range(LAYERS):
        p = f"encoder.layers.{i}."
        q = linear(x, p + "self_attn.q_proj") / math.sqrt(HEAD_DIM)
        k, val = linear(x, p + "self_attn.k_proj"), linear(x, p + "self_attn.v_proj")
        H = q.shape[-1] // HEAD_DIM
        q, k, val = (t.view(B, T, H, HEAD_DIM).transpose(1, 2) for t in (q, k, val))
        scores = (q @ k.transpose(-1, -2)).masked_fill(~valid[:, None, None, :], float("-inf"))
        context = (scores.softmax(-1) @ val).transpose(1, 2).reshape(B, T, H * HEAD_DIM)
        x = layer_norm(x + linear(context, p + "self_attn.out_proj"), p + "self_attn_layer_norm")
        ffn = linear(F.gelu(linear(x, p + "fc1")), p + "fc2")
        x = layer_norm(x + ffn, p + "final_layer_norm")
        hidden.append(x)
    return hidden


def padded_batch(feat_dim=80):
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(2, 23, feat_dim, generator=g)
    valid = torch.ones(2, 23, dtype=torch.bool)
    valid[1, 15:] = False
    feats[1, 15:] = 0.0  # pad_sequence pads with zeros
    return feats, valid


def assert_same_hidden_states(model, sd, feat_dim=80):
    feats, valid = padded_batch(feat_dim)
    with torch.no_grad():
        ours = model(feats, padding_mask=~valid).hidden_states
        ref = reference_hidden_states(sd, feats, valid)
    assert len(ours) == len(ref) == LAYERS + 1
    for a, b in zip(ours, ref):
        a, b = a[valid], b[valid]  # padded frames are not part of the output (the public code leaves them undefined)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert (ours[0][~valid] == 0).all()


def test_cli_import_gives_the_public_hidden_states(tmp_path):
    sd = public_state_dict()
    save_public(tmp_path / "public.ckpt", sd)
    assert main(["import-checkpoint", str(tmp_path / "public.ckpt"), "--out", str(tmp_path / "m.pt")]) == 0
    ckpt = load_checkpoint(tmp_path / "m.pt")  # what every other command reads
    cfg = ckpt.config
    assert (cfg.frame_ms, cfg.num_layers, cfg.embed_dim, cfg.layer_heads, cfg.num_clusters) == (20, 3, 32, [4] * 3, 10)
    assert cfg.mask_length == 5 and cfg.mask_prob == pytest.approx(0.14)  # 0.7 = start probability x span
    assert ckpt.meta["source_step"] == 1234
    assert_same_hidden_states(ckpt.model, sd)


def test_10ms_and_old_hubert_config_key(tmp_path):
    sd = public_state_dict(feat_dim=40, seed=1)
    save_public(tmp_path / "p10.ckpt", sd, config={**CONFIG, "feat_emb_dim": 40, "mask_length": 10}, key="hubert")
    model = import_public_checkpoint(tmp_path / "p10.ckpt")
    assert model.cfg.frame_ms == 10 and model.cfg.mask_prob == pytest.approx(0.07)
    assert_same_hidden_states(model, sd, feat_dim=40)


def test_head_pruned_and_weight_pruned_checkpoints(tmp_path):
    sd = public_state_dict(heads=(4, 1, 2), seed=2)
    mask = torch.rand(FFN, D, generator=torch.Generator().manual_seed(3)) > 0.5
    orig = sd.pop("encoder.layers.0.fc1.weight")
    sd["encoder.layers.0.fc1.weight_orig"], sd["encoder.layers.0.fc1.weight_mask"] = orig, mask.float()
    save_public(tmp_path / "pruned.ckpt", sd, Pruned_heads=[{1: [0, 2, 3], 2: [1, 3]}], Pruning={"density": 0.5})
    assert main(["import-checkpoint", str(tmp_path / "pruned.ckpt"), "--out", str(tmp_path / "m.pt")]) == 0
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.config.layer_heads == [4, 1, 2]
    assert torch.equal(ckpt.masks["layers.0.fc1.weight"], mask)
    assert (ckpt.model.layers[0].fc1.weight[~mask] == 0).all()
    reference = dict(sd, **{"encoder.layers.0.fc1.weight": orig * mask})
    assert_same_hidden_states(ckpt.model, reference)


def test_unreadable_or_foreign_files_are_clear_errors(tmp_path, capsys):
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    assert main(["import-checkpoint", str(tmp_path / "junk.ckpt"), "--out", str(tmp_path / "m.pt")]) == 2
    assert "cannot read" in capsys.readouterr().err
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(CompressLibError, match="not a public MelHuBERT checkpoint"):
        import_public_checkpoint(tmp_path / "other.pt")
    save_public(tmp_path / "preln.ckpt", public_state_dict(), config={**CONFIG, "layer_norm_first": True})
    with pytest.raises(CompressLibError, match="layer_norm_first"):
        import_public_checkpoint(tmp_path / "preln.ckpt")
    sd = public_state_dict()
    sd["encoder.layers.0.extra.weight"] = torch.zeros(1)
    save_public(tmp_path / "extra.ckpt", sd)
    with pytest.raises(CompressLibError, match="unexpected"):
        import_public_checkpoint(tmp_path / "extra.ckpt")


class _Custom:  # a class the safe unpickler does not know
    pass


def test_untrusted_pickles_need_trust(tmp_path):
    save_public(tmp_path / "c.ckpt", public_state_dict(), Runner=_Custom())
    with pytest.raises(CompressLibError, match="--trust"):
        import_public_checkpoint(tmp_path / "c.ckpt")
    assert import_public_checkpoint(tmp_path / "c.ckpt", trust=True).cfg.num_layers == LAYERS
