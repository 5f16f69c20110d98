"""The compared models ("zoo"): HuBERT Base and five compressed HuBERTs, built from their architecture descriptions.

The paper compares compressing MelHuBERT with DistilHuBERT, FitHuBERT, LightHuBERT, ARMHuBERT and STaRHuBERT
(section V-C, Fig. 4). For efficiency (parameters, MACs per second, real-time factor) the architecture is all
that matters, so every model here is built from its published shapes with random weights; no weights are
downloaded. Each model reads a 16 kHz waveform:

    wave (B, S)
      -> feature_extractor          wav CNN: Conv1d blocks (channels, kernel, stride) + norm + GELU    (B, C, T)
      -> feature_layer_norm         LayerNorm over the C channels
      -> post_extract_proj          Linear(C -> D) when C != D                  hidden_states[0]
      -> + pos_conv(x), layer_norm  conv positional embedding (MelHuBERT's), one LayerNorm (post-LN model)
      -> time_reduction             FitHuBERT only: Conv1d(D, D, 2, stride 2): 50 Hz -> 25 Hz (replaces
                                    hidden_states[0], so that all hidden states share one frame rate)
      -> layers[0..L-1]             post-LN Transformer layers                 hidden_states[1..L]

`model(wave)` returns the list of L + 1 hidden states, like MelHuBERT's `hidden_states`, for the downstream probes.

Attention: plain layers reuse MelHuBERT's `TransformerLayer` (SDPA attention). ARMHuBERT(-S) reuse attention
maps: layer 2i computes softmax(q k^T / sqrt(hd)) with its own q/k projections, layer 2i+1 has **no** q/k
projections and applies layer 2i's attention probabilities to its own values (`ExplicitSelfAttention`; its
attention MACs are the AV product only). ARMHuBERT's public code passes the previous layer's map and applies a
softmax to it again; we pass the probabilities themselves (same MACs, one softmax fewer).

Parameter counts: the papers do not all count the same things. `PUBLISHED_EXTRAS` lists, per model, the
parameters that the published count includes but the hidden states never use (prediction heads, HuBERT's
cluster embeddings, mask embeddings). They are held in `model.published_extras` (never used in forward) so that
`count_parameters(model)["total"]` reproduces the published convention, while the "params" that efficiency
tables report are the ones on the inference path. The facts behind each configuration are in
`docs/references.md` and the cited public code.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from compress_lib.config import MelHuBERTConfig, SAMPLE_RATE
from compress_lib.errors import CompressLibError
from compress_lib.model import ConvPositionalEmbedding, TransformerLayer, init_bert_params, seeded


# (channels, kernel, stride) of each wav CNN block
HUBERT_CNN = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


def thin_cnn(last_channels: int) -> list[tuple[int, int, int]]:
    """The slim CNN of FitHuBERT / ARMHuBERT / STaRHuBERT, ending in `last_channels` channels (stride 320)."""
    return [(128, 10, 5), (256, 1, 1)] + [(256, 3, 2)] * 4 + [(last_channels, 1, 1)] + [(last_channels, 2, 2)] * 2


@dataclass
class WavEncoderConfig:
    name: str
    conv_layers: list[tuple[int, int, int]]  # conv_feature_layers: [(channels, kernel, stride), ...]
    # extractor_mode: "group_norm" (fairseq "default": GroupNorm(C, C) after the first conv) or "layer_norm" (each conv)
    extractor_mode: str = "group_norm"
    conv_bias: bool = False  # conv_bias
    embed_dim: int = 768  # encoder_embed_dim
    num_layers: int = 12  # encoder_layers
    num_heads: int = 12  # encoder_attention_heads
    ffn_dim: int = 3072  # encoder_ffn_embed_dim
    conv_pos: int = 128  # conv_pos
    conv_pos_groups: int = 16  # conv_pos_groups
    reuse_pattern: list[bool] | None = None  # ARMHuBERT: True = computes its attention map, False = reuses the last
    time_reduction: int = 0  # FitHuBERT tr_reduce_factor (Conv1d kernel = stride); 0 = no time reduction
    published_extras: dict[str, tuple[int, ...]] = field(default_factory=dict)  # see PUBLISHED_EXTRAS
    dropout: float = 0.1
    attention_dropout: float = 0.1

    def __post_init__(self):
        if self.extractor_mode not in ("group_norm", "layer_norm"):
            raise CompressLibError(f"extractor_mode must be group_norm or layer_norm, got {self.extractor_mode!r}")
        if self.embed_dim % self.num_heads:
            raise CompressLibError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.reuse_pattern is not None:
            if len(self.reuse_pattern) != self.num_layers or not self.reuse_pattern[0]:
                raise CompressLibError(
                    "reuse_pattern needs one entry per layer, and the first layer must compute its attention map"
                )

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def feature_channels(self) -> int:
        return self.conv_layers[-1][0]

    def layer_config(self) -> MelHuBERTConfig:
        """The MelHuBERT config whose TransformerLayer / ConvPositionalEmbedding have this encoder's shapes."""
        return MelHuBERTConfig(
            embed_dim=self.embed_dim,
            head_dim=self.head_dim,
            layer_heads=[self.num_heads] * self.num_layers,
            layer_ffn_dims=[self.ffn_dim] * self.num_layers,
            conv_pos=self.conv_pos,
            conv_pos_groups=self.conv_pos_groups,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
        )

    def num_frames(self, num_samples: int) -> int:
        """Frames that the encoder layers see for `num_samples` samples of audio."""
        t = num_samples
        for _, k, s in self.conv_layers:
            t = (t - k) // s + 1
        if self.time_reduction:
            t = (t - self.time_reduction) // self.time_reduction + 1
        return max(t, 0)


# -- attention that exposes (and can reuse) its attention map -------------------------------------------------
class ExplicitSelfAttention(nn.Module):
    """Multi-head attention written out (matmul, softmax, matmul), returning its attention probabilities.

    `computes_map=False` builds a layer with no q/k projections: it applies the attention probabilities it is
    given (ARMHuBERT's attention-map reuse) to its own values.
    """

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, dropout: float, computes_map: bool = True):
        super().__init__()
        self.num_heads, self.head_dim, self.dropout = num_heads, head_dim, dropout
        self.computes_map = computes_map
        inner = num_heads * head_dim
        if computes_map:
            self.q_proj = nn.Linear(embed_dim, inner)
            self.k_proj = nn.Linear(embed_dim, inner)
        self.v_proj = nn.Linear(embed_dim, inner)
        self.out_proj = nn.Linear(inner, embed_dim)

    def forward(self, x, key_padding_mask=None, attn_probs=None):
        """x (B, T, D), key_padding_mask (B, T) True at padding, attn_probs (B, H, T, T) for a reusing layer.

        Returns (output (B, T, D), attention probabilities (B, H, T, T)).
        """
        B, T, _ = x.shape
        H, hd = self.num_heads, self.head_dim
        if self.computes_map:
            q = self.q_proj(x).view(B, T, H, hd).transpose(1, 2)  # (B, H, T, hd)
            k = self.k_proj(x).view(B, T, H, hd).transpose(1, 2)
            scores = torch.matmul(q, k.transpose(-2, -1)) * hd**-0.5  # (B, H, T, T): QK^T
            if key_padding_mask is not None:
                scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
            attn_probs = scores.softmax(dim=-1)
        elif attn_probs is None or attn_probs.shape != (B, H, T, T):
            raise CompressLibError("a reusing attention layer needs the previous layer's (B, H, T, T) attention map")
        v = self.v_proj(x).view(B, T, H, hd).transpose(1, 2)  # (B, H, T, hd)
        p = F.dropout(attn_probs, self.dropout, self.training)
        context = torch.matmul(p, v)  # (B, H, T, hd): AV
        return self.out_proj(context.transpose(1, 2).reshape(B, T, H * hd)), attn_probs


class MapReuseLayer(TransformerLayer):
    """MelHuBERT's post-LN layer with `ExplicitSelfAttention`: returns (x, attention probabilities)."""

    def __init__(self, cfg: MelHuBERTConfig, num_heads: int, ffn_dim: int, computes_map: bool):
        super().__init__(cfg, num_heads, ffn_dim)
        self.self_attn = ExplicitSelfAttention(
            cfg.embed_dim, num_heads, cfg.head_dim, cfg.attention_dropout, computes_map=computes_map
        )

    def forward(self, x, padding_mask=None, attn_probs=None):
        a, attn_probs = self.self_attn(x, padding_mask, attn_probs)
        x = self.self_attn_layer_norm(x + self.dropout(a))
        ffn = self.fc2(self.activation_dropout(F.gelu(self.fc1(x))))  # (B, T, ffn_dim) inside
        return self.final_layer_norm(x + self.dropout(ffn)), attn_probs


# -- the wav front-end -----------------------------------------------------------------------------------------
class _ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, T) tensor."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ConvFeatureExtractor(nn.Module):
    """wav2vec 2.0 / HuBERT CNN: blocks of Conv1d (no padding) + norm + GELU; wave (B, S) -> (B, C, T)."""

    def __init__(self, conv_layers, mode: str = "group_norm", bias: bool = False):
        super().__init__()
        blocks, c_in = [], 1
        for i, (c, k, s) in enumerate(conv_layers):
            conv = nn.Conv1d(c_in, c, k, stride=s, bias=bias)
            nn.init.kaiming_normal_(conv.weight)
            if mode == "layer_norm":
                norm = _ChannelLayerNorm(c)
            elif i == 0:
                norm = nn.GroupNorm(c, c)
            else:
                norm = nn.Identity()
            blocks.append(nn.Sequential(conv, norm, nn.GELU()))
            c_in = c
        self.blocks = nn.Sequential(*blocks)

    def forward(self, wave):
        return self.blocks(wave[:, None, :])  # (B, 1, S) -> (B, C, T)


class WavEncoder(nn.Module):
    """A HuBERT-family encoder on 16 kHz waveforms; `forward(wave) -> list of hidden states`."""

    def __init__(self, cfg: WavEncoderConfig):
        super().__init__()
        self.cfg = cfg
        lcfg = cfg.layer_config()
        D, C = cfg.embed_dim, cfg.feature_channels
        self.feature_extractor = ConvFeatureExtractor(cfg.conv_layers, cfg.extractor_mode, cfg.conv_bias)
        self.feature_layer_norm = nn.LayerNorm(C)
        self.post_extract_proj = nn.Linear(C, D) if C != D else None
        self.pos_conv = ConvPositionalEmbedding(D, cfg.conv_pos, cfg.conv_pos_groups, cfg.dropout)
        self.layer_norm = nn.LayerNorm(D)
        self.dropout = nn.Dropout(cfg.dropout)
        r = cfg.time_reduction
        self.time_reduction = nn.Conv1d(D, D, kernel_size=r, stride=r) if r else None
        if cfg.reuse_pattern is None:
            layers = [TransformerLayer(lcfg, cfg.num_heads, cfg.ffn_dim) for _ in range(cfg.num_layers)]
        else:
            layers = [MapReuseLayer(lcfg, cfg.num_heads, cfg.ffn_dim, computes) for computes in cfg.reuse_pattern]
        self.layers = nn.ModuleList(layers)
        self.apply(init_bert_params)
        # parameters the published count includes but the hidden states never use (see PUBLISHED_EXTRAS)
        self.published_extras = nn.ParameterDict(
            {name: nn.Parameter(torch.randn(shape) * 0.02) for name, shape in cfg.published_extras.items()}
        )

    def conv_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """CNN output frames (50 Hz) for `num_samples` valid samples, (B,) -> (B,)."""
        t = num_samples
        for _, k, s in self.cfg.conv_layers:
            t = torch.div(t - k, s, rounding_mode="floor") + 1
        return t.clamp(min=0)

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Frames per utterance at the encoder's frame rate for `num_samples` valid samples, (B,) -> (B,)."""
        t = self.conv_lengths(num_samples)
        if self.cfg.time_reduction:
            t = torch.div(t, self.cfg.time_reduction, rounding_mode="floor")  # a reduced frame needs all its inputs
        return t

    @staticmethod
    def _frame_padding(padding_mask, num_frames, lengths_fn):
        lengths = lengths_fn((~padding_mask).sum(-1))
        return torch.arange(num_frames, device=padding_mask.device)[None, :] >= lengths[:, None]  # (B, T)

    def forward(
        self, wave: torch.Tensor, padding_mask: torch.Tensor | None = None, num_layers: int | None = None
    ) -> list[torch.Tensor]:
        """Encode 16 kHz audio.

        Args:
            wave: (B, S) waveform samples.
            padding_mask: (B, S) bool, True at padded samples.
            num_layers: stop after the first k layers (default all).
        Returns:
            k + 1 hidden states, each (B, T, D).
        """
        if wave.dim() != 2:
            raise CompressLibError(f"expected a waveform of shape (batch, samples), found {tuple(wave.shape)}")
        min_samples = self.cfg.conv_layers[0][1]
        if wave.shape[1] < min_samples:
            raise CompressLibError(f"{self.cfg.name} needs at least {min_samples} samples, got {wave.shape[1]}")
        L = self.cfg.num_layers if num_layers is None else num_layers
        if not 0 <= L <= self.cfg.num_layers:
            raise CompressLibError(f"num_layers must be in 0..{self.cfg.num_layers}, got {num_layers}")
        x = self.feature_extractor(wave)  # (B, C, T)
        x = self.feature_layer_norm(x.transpose(1, 2))  # (B, T, C)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)  # (B, T, D)
        pad = None
        if padding_mask is not None:
            pad = self._frame_padding(padding_mask, x.shape[1], self.conv_lengths)  # (B, T) True at padding
            x = x.masked_fill(pad[..., None], 0.0)
        hidden_states = [x]
        x = self.dropout(self.layer_norm(x + self.pos_conv(x)))
        if self.time_reduction is not None:
            x = self.time_reduction(x.transpose(1, 2)).transpose(1, 2).contiguous()  # (B, T // r, D)
            if padding_mask is not None:
                pad = self._frame_padding(padding_mask, x.shape[1], self.output_lengths)
            hidden_states = [x]
        attn_probs = None
        for layer in self.layers[:L]:
            if isinstance(layer, MapReuseLayer):
                x, attn_probs = layer(x, pad, attn_probs)
            else:
                x = layer(x, pad)
            hidden_states.append(x)
        return hidden_states


# -- the zoo ---------------------------------------------------------------------------------------------------
def _arm_heads(d: int, layers: int = 12, teacher_dim: int = 768) -> dict:
    """ARMHuBERT's layer-wise prediction heads Linear(d -> 768), one per layer, plus its mask embedding."""
    extras = {"mask_emb": (d,)}
    for i in range(layers):
        extras[f"proj_head_{i}_weight"] = (teacher_dim, d)
        extras[f"proj_head_{i}_bias"] = (teacher_dim,)
    return extras


# What each published parameter count includes beyond the hidden-state path (all verified to reproduce the
# published count; the counts of the public code are the source):
PUBLISHED_EXTRAS = {
    # fairseq HuBERT Base: final_proj Linear(768 -> 256), label_embs_concat (504 x 256), mask_emb (768)
    "hubert-base": {"final_proj_weight": (256, 768), "final_proj_bias": (256,), "label_embs_concat": (504, 256),
                    "mask_emb": (768,)},
    # s3prl DistilHuBERT: the published 23.49 M excludes its three prediction heads
    "distilhubert": {},
    # FitHuBERT (glory20h/FitHuBERT): the model's ConvTranspose1d upsampler (480, 480, 2) and the last layer-wise
    # projection head kept as final_proj (ConvTranspose1d upsampler + Linear(480 -> 768))
    "fithubert": {"upsampler_weight": (480, 480, 2), "upsampler_bias": (480,),
                  "final_proj_upsampler_weight": (480, 480, 2), "final_proj_upsampler_bias": (480,),
                  "final_proj_lin_weight": (768, 480), "final_proj_lin_bias": (768,)},
    # LightHuBERT calc_sampled_param_num: counts the supernet's (unsliced, 768-wide) mask embedding, not the
    # prediction head
    "lighthubert-small": {"mask_emb": (768,)},
    # ARMHuBERT (sungnyun/ARMHuBERT): 12 layer-wise heads Linear(480 -> 768) + mask embedding
    "armhubert": _arm_heads(480),
    "armhubert-s": _arm_heads(432),
    # STaRHuBERT (built on ARMHuBERT's code, plain Transformer): mask embedding only, no heads
    "starhubert": {"mask_emb": (432,)},
}

_ALTERNATE = [True, False] * 6  # ARMHuBERT reuse_pattern: every second layer reuses the previous map



def _zoo_config(name: str, conv_layers, **sizes) -> WavEncoderConfig:
    return WavEncoderConfig(name, conv_layers, published_extras=PUBLISHED_EXTRAS[name], **sizes)


ZOO_CONFIGS = {
    "hubert-base": _zoo_config("hubert-base", HUBERT_CNN),
    "distilhubert": _zoo_config("distilhubert", HUBERT_CNN, num_layers=2),
    "fithubert": _zoo_config("fithubert", thin_cnn(512), embed_dim=480, ffn_dim=480, time_reduction=2),
    "lighthubert-small": _zoo_config(
        "lighthubert-small", HUBERT_CNN, extractor_mode="layer_norm", embed_dim=384, num_heads=6, ffn_dim=1536
    ),
    "armhubert": _zoo_config("armhubert", thin_cnn(480), embed_dim=480, ffn_dim=864, reuse_pattern=_ALTERNATE),
    "armhubert-s": _zoo_config("armhubert-s", thin_cnn(432), embed_dim=432, ffn_dim=816, reuse_pattern=_ALTERNATE),
    "starhubert": _zoo_config("starhubert", thin_cnn(432), embed_dim=432, num_heads=8, ffn_dim=976),
}

# Cited reference values (not measured here): parameter counts as published (M).
PUBLISHED_PARAMS = {
    "hubert-base": 94.70e6,
    "distilhubert": 23.49e6,
    "fithubert": 22.49e6,
    "lighthubert-small": 27.00e6,
    "armhubert": 26.45e6,
    "armhubert-s": 22.39e6,
    "starhubert": 22.31e6,
}

_RESULTS_SOURCE = "cited: result tables in the README of sungnyun/ARMHuBERT (assets/result.png, result_star.png)"
# Cited reference values (not measured here): SUPERB phone recognition PER (%) and speaker ID accuracy (%).
PUBLISHED_RESULTS = {
    name: {"params": PUBLISHED_PARAMS[name], "per": per, "sid_acc": sid, "source": _RESULTS_SOURCE, "cited": True}
    for name, per, sid in [
        ("hubert-base", 5.41, 81.42),
        ("distilhubert", 16.27, 73.54),
        ("fithubert", 13.32, 55.71),
        ("lighthubert-small", 6.60, 69.70),
        ("armhubert", 7.72, 65.03),
        ("armhubert-s", 8.63, 63.76),
        ("starhubert", 8.16, 77.58),
    ]
}

DESCRIPTIONS = {
    "hubert-base": "HuBERT Base: 512-channel wav CNN, 12 x 768, FFN 3072, 12 heads (the teacher)",
    "distilhubert": "DistilHuBERT: HuBERT's CNN, 2 x 768 layers, FFN 3072, 12 heads",
    "fithubert": "FitHuBERT: thin CNN, 12 x 480, FFN 480, 12 heads, time reduction to 25 Hz",
    "lighthubert-small": "LightHuBERT a_Small: HuBERT's CNN (LayerNorm mode), 12 x 384, FFN 1536, 6 heads",
    "armhubert": "ARMHuBERT: thin CNN (480), 12 x 480, FFN 864, 12 heads, attention-map reuse every 2nd layer",
    "armhubert-s": "ARMHuBERT-S: thin CNN (432), 12 x 432, FFN 816, 12 heads, attention-map reuse every 2nd layer",
    "starhubert": "STaRHuBERT: thin CNN (432), 12 x 432, FFN 976, 8 heads",
}


def _builder(name):
    def build() -> WavEncoder:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            return WavEncoder(ZOO_CONFIGS[name])

    build.__doc__ = f"Build {DESCRIPTIONS[name]} with random weights."
    return build


ZOO = {name: _builder(name) for name in ZOO_CONFIGS}


def build_zoo_model(name: str, seed: int = 0) -> WavEncoder:
    """A zoo model with random weights (seeded), in eval mode."""
    if name not in ZOO:
        raise CompressLibError(
            f"unknown zoo model {name!r}; valid: {', '.join(ZOO)} (see `compress-lib profile --list`)"
        )
    return seeded(ZOO[name], seed)


def frames_per_second(cfg: WavEncoderConfig) -> float:
    """The encoder's frame rate in Hz (50 for HuBERT's stride-320 CNN, 25 with time reduction)."""
    stride = math.prod(s for _, _, s in cfg.conv_layers) * max(cfg.time_reduction, 1)
    return SAMPLE_RATE / stride
