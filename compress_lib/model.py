"""MelHuBERT: a HuBERT that reads log-Mel frames instead of waveforms (Lin et al., ASRU 2023).

    log-Mel frames (B, T, F)          F = 40 at 10 ms, 80 (stacked pairs) at 20 ms
      -> zero the masked frames       (pretraining only; masking happens *before* the projection)
      -> pre_extract_proj             Linear(F -> D)            hidden_states[0]
      -> + pos_conv(x)                GELU(weight-normed grouped Conv1d, kernel 128)
      -> layer_norm                   (post-LN model: one LayerNorm before the first layer)
      -> layers[0..L-1]               post-LN Transformer layers  hidden_states[1..L]
      -> final_proj                   Linear(D -> K clusters)   logits for masked prediction

Module and parameter names follow the public MelHuBERT code so that its checkpoints map one to one
(see `compress_lib/import_checkpoint.py`). Every layer has its own head count and FFN width: structured pruning
shrinks them physically, and a layer may end with zero heads or zero FFN units (the block then adds only its
output bias).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from compress_lib.config import MelHuBERTConfig
from compress_lib.errors import CompressLibError


class SelfAttention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention`.

    Set `capture_context = True` to keep each head's attention-weighted values J (B, H, T, head_dim) in
    `self.context` (with its gradient retained): head pruning scores heads by |J . dL/dJ| (Michel et al. 2019).
    """

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        inner = num_heads * head_dim
        self.q_proj = nn.Linear(embed_dim, inner)
        self.k_proj = nn.Linear(embed_dim, inner)
        self.v_proj = nn.Linear(embed_dim, inner)
        self.out_proj = nn.Linear(inner, embed_dim)
        self.capture_context = False
        self.context: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape  # (batch, frames, embed_dim)
        if self.num_heads == 0:  # every head pruned: the block adds only the output bias
            return self.out_proj.bias.expand(B, T, D)
        H, hd = self.num_heads, self.head_dim
        q = self.q_proj(x).view(B, T, H, hd).transpose(1, 2)  # (B, H, T, hd)
        k = self.k_proj(x).view(B, T, H, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, H, hd).transpose(1, 2)
        attn_mask = None
        if key_padding_mask is not None:  # (B, T), True at padding -> (B, 1, 1, T), True where attention is allowed
            attn_mask = ~key_padding_mask[:, None, None, :]
        context = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, hd): J_h = softmax(q k^T / sqrt(hd)) v for each head h
        if self.capture_context:
            if context.requires_grad:
                context.retain_grad()
            self.context = context
        return self.out_proj(context.transpose(1, 2).reshape(B, T, H * hd))  # (B, T, D)


class TransformerLayer(nn.Module):
    """Post-LayerNorm Transformer layer: x = LN1(x + attn(x)); x = LN2(x + fc2(gelu(fc1(x))))."""

    def __init__(self, cfg: MelHuBERTConfig, num_heads: int, ffn_dim: int):
        super().__init__()
        D = cfg.embed_dim
        with warnings.catch_warnings():  # a fully pruned block has zero-element weights; nothing to initialise
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            self.self_attn = SelfAttention(D, num_heads, cfg.head_dim, cfg.attention_dropout)
            self.fc1 = nn.Linear(D, ffn_dim)
            self.fc2 = nn.Linear(ffn_dim, D)
        self.self_attn_layer_norm = nn.LayerNorm(D)
        self.final_layer_norm = nn.LayerNorm(D)
        self.dropout = nn.Dropout(cfg.dropout)
        self.activation_dropout = nn.Dropout(cfg.activation_dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.dropout(self.self_attn(x, padding_mask)))
        ffn = self.fc2(self.activation_dropout(F.gelu(self.fc1(x))))  # (B, T, ffn_dim) inside
        return self.final_layer_norm(x + self.dropout(ffn))


class ConvPositionalEmbedding(nn.Module):
    """GELU(Conv1d(D, D, kernel K, groups G)) with weight norm over the kernel axis and 'same' padding.

    With an even kernel the padded convolution yields T + 1 frames; the last one is dropped (as in HuBERT).
    """

    def __init__(self, embed_dim: int, kernel: int, groups: int, dropout: float = 0.1):
        super().__init__()
        conv = nn.Conv1d(embed_dim, embed_dim, kernel_size=kernel, padding=kernel // 2, groups=groups)
        std = math.sqrt(4 * (1.0 - dropout) / (kernel * embed_dim))
        nn.init.normal_(conv.weight, mean=0.0, std=std)
        nn.init.zeros_(conv.bias)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.trim = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))  # (B, D, T + trim)
        if self.trim:
            y = y[:, :, : -self.trim]
        return F.gelu(y).transpose(1, 2)  # (B, T, D)


@dataclass
class MelHuBERTOutput:
    hidden_states: list[torch.Tensor]  # [projected input] + [each layer's output], each (B, T, D)
    logits: torch.Tensor | None  # (B, T, K) cluster logits of the last computed layer, if asked for

    @property
    def last_hidden_state(self) -> torch.Tensor:
        return self.hidden_states[-1]


class MelHuBERT(nn.Module):
    def __init__(self, cfg: MelHuBERTConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        self.pre_extract_proj = nn.Linear(cfg.feat_dim, D)
        self.pos_conv = ConvPositionalEmbedding(D, cfg.conv_pos, cfg.conv_pos_groups, cfg.dropout)
        self.layer_norm = nn.LayerNorm(D)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(cfg, h, f) for h, f in zip(cfg.layer_heads, cfg.layer_ffn_dims)
        )
        self.final_proj = nn.Linear(D, cfg.num_clusters)
        self.apply(init_bert_params)

    def forward(
        self,
        feats: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        num_layers: int | None = None,
        compute_logits: bool = True,
    ) -> MelHuBERTOutput:
        """Encode log-Mel frames.

        Args:
            feats: (B, T, F) normalised log-Mel frames, F = cfg.feat_dim.
            padding_mask: (B, T) bool, True at padded frames (ignored as attention keys, zeroed at the input).
            frame_mask: (B, T) bool, True at frames to mask (replaced by zeros before the projection).
            num_layers: stop after the first k layers (the "first-k" truncation baselines); default all.
            compute_logits: apply the cluster head to the last computed layer.
        Returns:
            MelHuBERTOutput with k + 1 hidden states of shape (B, T, D) and logits (B, T, K) or None.
        """
        if feats.dim() != 3 or feats.shape[-1] != self.cfg.feat_dim:
            raise CompressLibError(
                f"expected features of shape (batch, frames, {self.cfg.feat_dim}) for a {self.cfg.frame_ms} ms "
                f"MelHuBERT, found {tuple(feats.shape)}; check --frame-ms matches the checkpoint"
            )
        L = self.cfg.num_layers if num_layers is None else num_layers
        if not 0 <= L <= self.cfg.num_layers:
            raise CompressLibError(f"num_layers must be in 0..{self.cfg.num_layers}, got {num_layers}")
        if frame_mask is not None:
            feats = feats.masked_fill(frame_mask[..., None], 0.0)
        x = self.pre_extract_proj(feats)  # (B, T, D)
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
        hidden_states = [x]
        x = self.layer_norm(x + self.pos_conv(x))
        x = self.dropout(x)
        for layer in self.layers[:L]:
            x = layer(x, padding_mask)
            hidden_states.append(x)
        logits = self.final_proj(x) if compute_logits else None
        return MelHuBERTOutput(hidden_states=hidden_states, logits=logits)

    def num_parameters(self, include_head: bool = False) -> int:
        """All parameters (weight norm counted as its g and v), without the cluster head unless asked."""
        n = sum(p.numel() for p in self.parameters())
        if not include_head:
            n -= sum(p.numel() for p in self.final_proj.parameters())
        return n


def init_bert_params(module: nn.Module) -> None:
    """BERT-style init as in fairseq: N(0, 0.02) linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def seeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """`build()` with its random initial weights drawn under `seed`, leaving the global random state as it was;
    in eval mode. For models whose costs, not values, are measured (any seed gives the same counts)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()
