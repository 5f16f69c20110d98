"""Model surgery shared by the structured methods: slicing a linear layer to the rows or columns kept, zeroing
masked weights, and describing a model's shape and size (parameters, non-zero count, MACs per second)."""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from compress_lib.model import MelHuBERT


# -- slicing -------------------------------------------------------------------------------------------------------
def slice_linear(linear: nn.Linear, dim: int, keep_idx) -> nn.Linear:
    """A new Linear that keeps only the features `keep_idx` along `dim`.

    dim 0 keeps output features (rows of the weight, entries of the bias); dim 1 keeps input features (columns
    of the weight; the bias is unchanged). An empty `keep_idx` gives a zero-size layer.
    Shapes: weight (out, in) -> (len(keep), in) for dim 0, (out, len(keep)) for dim 1.
    """
    if dim not in (0, 1):
        raise ValueError(f"dim must be 0 (outputs) or 1 (inputs), found {dim}")
    keep_idx = torch.as_tensor(keep_idx, dtype=torch.long).reshape(-1)
    weight = linear.weight.detach().index_select(dim, keep_idx).clone()
    bias = None
    if linear.bias is not None:
        bias = linear.bias.detach()[keep_idx].clone() if dim == 0 else linear.bias.detach().clone()
    with warnings.catch_warnings():  # a zero-size layer warns that there is nothing to initialise
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")  # no init
    new.weight = nn.Parameter(weight)
    if bias is not None:
        new.bias = nn.Parameter(bias)
    return new


def head_feature_index(heads, head_dim: int) -> torch.Tensor:
    """Feature indices of the given heads in a q/k/v output (or out_proj input): head h owns [h*hd, (h+1)*hd)."""
    heads = torch.as_tensor(list(heads), dtype=torch.long)
    return (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).reshape(-1)


# -- model description ---------------------------------------------------------------------------------------------
def masked_count(masks: dict | None, prefix: str = "") -> int:
    """Number of masked-out (zero) entries among the masks whose parameter name starts with `prefix`."""
    if not masks:
        return 0
    return sum(int((~m).sum()) for name, m in masks.items() if name.startswith(prefix))


def layer_parameters(model: MelHuBERT, masks: dict | None = None) -> int:
    """Parameters of the Transformer layers, masked entries not counted (the part compression acts on)."""
    return sum(p.numel() for p in model.layers.parameters()) - masked_count(masks, "layers.")


def structure(model: MelHuBERT, masks: dict | None = None) -> dict:
    """The shape of a model and its size: parameters (without the cluster head), their non-zero count (masked
    weights not counted) and MACs per second of speech in closed form (masked weights not counted)."""
    from compress_lib.efficiency import closed_form_macs_per_second, count_parameters

    cfg = model.cfg
    counts = count_parameters(model, masks)
    return {
        "num_layers": cfg.num_layers,
        "embed_dim": cfg.embed_dim,
        "layer_heads": list(cfg.layer_heads),
        "layer_ffn_dims": list(cfg.layer_ffn_dims),
        "parameters": counts["params"],
        "nonzero_parameters": counts["nonzero"],
        "layer_parameters": layer_parameters(model, masks),
        "macs_per_second": closed_form_macs_per_second(model, masks),
    }


@torch.no_grad()
def apply_masks(params: dict, masks: dict) -> None:
    """Zero the masked-out entries: param *= mask for every masked parameter."""
    for name, mask in masks.items():
        params[name].mul_(mask)


def unfrozen_copy(model: MelHuBERT) -> MelHuBERT:
    """A trainable deep copy of a (frozen) model."""
    new = copy.deepcopy(model)
    for p in new.parameters():
        p.requires_grad_(True)
    return new
