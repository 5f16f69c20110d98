"""MelHuBERT's configuration: one dataclass, every size a parameter.

Field comments name the option of the public MelHuBERT code (`nervjack2/MelHuBERT`, config `melhubert`) and
its paper value. Structured pruning changes `layer_heads` / `layer_ffn_dims` per layer, so a pruned model's
config records its exact shape and a checkpoint rebuilds it without the user restating sizes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from compress_lib.errors import CompressLibError, check_choice

FRAME_MS_CHOICES = (10, 20)
MEL_BINS = 40  # Kaldi fbank bins; the 20 ms model stacks frame pairs into 2 * 40 = 80 dims
SAMPLE_RATE = 16000  # Hz; every feature and model of the study assumes it


@dataclass
class MelHuBERTConfig:
    frame_ms: int = 20  # 10 or 20; input features are 40-dim (10 ms) or 80-dim stacked pairs (20 ms)
    embed_dim: int = 768  # encoder_embed_dim (paper: 768)
    head_dim: int = 64  # encoder_embed_dim / encoder_attention_heads (paper: 64)
    layer_heads: list[int] = field(default_factory=lambda: [12] * 12)  # encoder_attention_heads per layer
    layer_ffn_dims: list[int] = field(default_factory=lambda: [3072] * 12)  # encoder_ffn_embed_dim per layer
    conv_pos: int = 128  # conv_pos: kernel width of the convolutional positional embedding
    conv_pos_groups: int = 16  # conv_pos_groups
    num_clusters: int = 512  # num_cluster: size of the k-means codebook predicted by the head
    dropout: float = 0.1  # dropout after attention / FFN blocks and on the input projection
    attention_dropout: float = 0.1  # dropout on attention probabilities
    activation_dropout: float = 0.1  # activation_dropout: dropout after the FFN's GELU (public config: 0.1)
    mask_prob: float = 0.07  # probability that a frame starts a masked span (paper: 7% at 10 ms, 14% at 20 ms)
    mask_length: int = 10  # span length in frames (paper: 10 at 10 ms, 5 at 20 ms)

    def __post_init__(self):
        check_choice(self.frame_ms, FRAME_MS_CHOICES, "frame rate (ms)")
        self.layer_heads = [int(h) for h in self.layer_heads]
        self.layer_ffn_dims = [int(f) for f in self.layer_ffn_dims]
        if len(self.layer_heads) != len(self.layer_ffn_dims):
            raise CompressLibError(
                f"layer_heads has {len(self.layer_heads)} layers but layer_ffn_dims has {len(self.layer_ffn_dims)}; "
                "give one entry per layer in both"
            )
        if any(h < 0 for h in self.layer_heads) or any(f < 0 for f in self.layer_ffn_dims):
            raise CompressLibError("head counts and FFN widths must be >= 0")
        if self.embed_dim % self.conv_pos_groups:
            raise CompressLibError(
                f"embed_dim {self.embed_dim} must be divisible by conv_pos_groups {self.conv_pos_groups}"
            )

    # -- derived sizes -------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layer_heads)

    @property
    def feat_dim(self) -> int:
        """Input feature size: 40 log-Mel bins at 10 ms, two stacked frames (80) at 20 ms."""
        return MEL_BINS * (self.frame_ms // 10)

    @property
    def frames_per_second(self) -> int:
        return 1000 // self.frame_ms

    # -- construction helpers --------------------------------------------------------------------------
    @classmethod
    def uniform(cls, num_layers=12, embed_dim=768, num_heads=12, ffn_dim=3072, frame_ms=20, **kwargs):
        """A model whose layers all have the same size (the unpruned shape)."""
        kwargs.setdefault("head_dim", embed_dim // num_heads)
        kwargs.setdefault("mask_prob", 0.07 if frame_ms == 10 else 0.14)
        kwargs.setdefault("mask_length", 10 if frame_ms == 10 else 5)
        return cls(
            frame_ms=frame_ms,
            embed_dim=embed_dim,
            layer_heads=[num_heads] * num_layers,
            layer_ffn_dims=[ffn_dim] * num_layers,
            **kwargs,
        )

    def replace(self, **changes) -> "MelHuBERTConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MelHuBERTConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise CompressLibError(f"unknown MelHuBERT config keys {sorted(unknown)}; is this a compress_lib checkpoint?")
        return cls(**d)


# Model sizes per preset. `study` is the size chosen for a 2-core CPU (see book/appendix: the search table).
MODEL_PRESETS = {
    "smoke": dict(num_layers=4, embed_dim=32, num_heads=2, ffn_dim=64, num_clusters=16, conv_pos=16, conv_pos_groups=4),
    # lab: a class's teacher, pretrained in minutes (docs/lab_preset.md); no dropout, as study.
    "lab": dict(num_layers=4, embed_dim=192, num_heads=4, ffn_dim=768, num_clusters=50, conv_pos=64,
                conv_pos_groups=16, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0),
    # study: chosen by measurement (docs/study_preset.md): 6 x 256 learnt more in 1,000 CPU steps than 12 x 192
    # at the same cost; no dropout (with dropout 0.1 the model barely beat its random-init twin).
    "study": dict(num_layers=6, embed_dim=256, num_heads=4, ffn_dim=1024, num_clusters=100, conv_pos=64,
                  conv_pos_groups=16, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0),
    "paper": dict(num_layers=12, embed_dim=768, num_heads=12, ffn_dim=3072, num_clusters=512, conv_pos=128, conv_pos_groups=16),
}


def config_for_preset(preset: str, frame_ms: int = 20, **overrides) -> MelHuBERTConfig:
    """The unpruned MelHuBERT of a preset at a frame rate; `overrides` replace any field."""
    from compress_lib.presets import check_preset

    sizes = dict(MODEL_PRESETS[check_preset(preset)])
    sizes.update(overrides)
    return MelHuBERTConfig.uniform(frame_ms=frame_ms, **sizes)
