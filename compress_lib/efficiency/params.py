"""Parameter counts: total, non-zero (weight pruning's masks honoured) and per component.

Conventions:
- "total": every parameter the module holds, including prediction heads / training-only parameters (MelHuBERT's
  cluster head `final_proj`, the zoo's `published_extras`) and layers a truncated run skips. For zoo models this
  is the published counting convention.
- "params": the parameters on the inference path, i.e. used to compute the hidden states (no heads; with
  `num_layers=k` only the first k layers). Efficiency tables report this one.
- "nonzero": "params" minus the weights that weight pruning masked out. A masked weight is one whose mask entry is
  False (stored as zero); an unmasked weight counts even if its value happens to be zero (e.g. a zero-initialised
  bias), so the count depends on the masks only, never on the values.
- "components": "params" split into front_end (input projection / wav CNN), positional_conv, time_reduction,
  attention (q/k/v/out), ffn (fc1/fc2), layer_norm, plus "heads" (outside "params").
"""

from __future__ import annotations

import re

import torch

from compress_lib.errors import CompressLibError
from compress_lib.efficiency.inputs import num_layers_used

COMPONENTS = ("front_end", "positional_conv", "time_reduction", "attention", "ffn", "layer_norm", "other", "heads")
_LAYER = re.compile(r"^layers\.(\d+)\.")


def component_of(name: str) -> str:
    """The component a parameter belongs to, from its name in MelHuBERT / the zoo models."""
    if name.startswith(("final_proj", "published_extras")):
        return "heads"
    if name.startswith(("pre_extract_proj", "feature_extractor", "feature_layer_norm", "post_extract_proj")):
        return "front_end"
    if name.startswith("pos_conv"):
        return "positional_conv"
    if name.startswith("time_reduction"):
        return "time_reduction"
    if ".self_attn." in name:
        return "attention"
    if ".fc1." in name or ".fc2." in name:
        return "ffn"
    if "layer_norm" in name:
        return "layer_norm"
    return "other"


def layer_index(name: str) -> int | None:
    """The 0-based Transformer layer a parameter belongs to (`layers.3.fc1.weight` -> 3); None outside layers."""
    layer = _LAYER.match(name)
    return int(layer.group(1)) if layer else None


def check_masks(model, masks: dict | None) -> dict:
    """Masks keyed by parameter name, each a bool tensor of that parameter's shape; one clear error otherwise."""
    if not masks:
        return {}
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise CompressLibError(
                f"mask for {name!r}, which the model has no parameter of; the masks belong to another model"
            )
        if tuple(mask.shape) != tuple(params[name].shape):
            raise CompressLibError(
                f"mask for {name} has shape {tuple(mask.shape)}, the parameter {tuple(params[name].shape)}; "
                "the masks belong to another model"
            )
    return {name: mask.bool() for name, mask in masks.items()}


def nonzero_count(name: str, param: torch.Tensor, masks: dict) -> int:
    return int(masks[name].sum()) if name in masks else param.numel()


def count_parameters(model, masks: dict | None = None, num_layers: int | None = None) -> dict:
    """Parameter counts of `model` (see the module docstring for what each key counts).

    Returns {"total", "params", "nonzero", "components": {component: params},
    "nonzero_components": {component: nonzero}}; "heads" is listed in the components but not in "params".
    """
    masks = check_masks(model, masks)
    L = num_layers_used(model, num_layers) if hasattr(model, "layers") else None
    total = 0
    components = dict.fromkeys(COMPONENTS, 0)
    nonzero_components = dict.fromkeys(COMPONENTS, 0)
    for name, p in model.named_parameters():
        total += p.numel()
        layer = layer_index(name)
        if layer is not None and L is not None and layer >= L:
            continue  # a layer the truncated model never runs
        c = component_of(name)
        components[c] += p.numel()
        nonzero_components[c] += nonzero_count(name, p, masks)
    return {
        "total": total,
        "params": sum(v for c, v in components.items() if c != "heads"),
        "nonzero": sum(v for c, v in nonzero_components.items() if c != "heads"),
        "components": components,
        "nonzero_components": nonzero_components,
    }
