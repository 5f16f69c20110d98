"""MACs per second of speech, counted by ptflops (the design card's counter), masks honoured.

How the count is made: one forward of the model on `seconds` of speech (batch 1) runs under ptflops' aten
counter (`ptflops.aten_engine.FlopCounterMode`, a TorchDispatchMode that sees every aten operator) and inside
`sdpa_kernel(SDPBackend.MATH)`, so that `scaled_dot_product_attention` decomposes into the two batched matmuls
QK^T and AV that the counter sees (with the fused CPU kernel, ptflops counts attention as 0). Explicitly written
attention (ARMHuBERT's map reuse) is two / one `matmul` and is counted as such. ptflops' own op formulas count
the dense operators; our hooks only scale the operand that is a masked weight by its non-zero fraction.
A linear layer's bias is counted when the layer lowers to `addmm`, i.e. when its input is contiguous; on a
non-contiguous input PyTorch uses `mm` + `add` and the bias additions would go uncounted (the models keep their
linear inputs contiguous; the closed-form tests catch a violation).

COUNTING_CONVENTION below is the exact statement; the book quotes it and `closed_form.py` implements it.
"""

from __future__ import annotations

import torch
from ptflops.aten_engine import FlopCounterMode
from ptflops.aten_ops import bmm_flop, conv_flop_count, matmul_flop
from torch.nn.attention import SDPBackend, sdpa_kernel

from compress_lib.efficiency.inputs import example_inputs, model_device
from compress_lib.efficiency.params import check_masks
from compress_lib.zoo import WavEncoder

COUNTING_CONVENTION = """\
MACs (multiply-accumulates) per second of speech = the MACs of one forward pass on a 1-second input (batch 1),
as counted by ptflops (aten backend). Counted:
- every linear layer: N x in x out for N input rows, plus N x out for its bias (ptflops counts bias additions);
- every convolution: the wav CNN front-ends, the convolutional positional embedding (on the T + 1 frames its even
  kernel computes before the last one is dropped) and FitHuBERT's time-reduction convolution: output positions x
  C_out x (C_in / groups) x kernel, plus output positions x C_out for a bias;
- the attention matmuls of every layer: QK^T and AV, each B x heads x T x T x head_dim; a layer that reuses the
  previous layer's attention map (ARMHuBERT) has AV only;
- weight pruning: a masked weight (or bias) contributes no MAC; a linear layer costs N x (its non-zero weights
  + non-zero biases).
Not counted: normalisation (LayerNorm, GroupNorm), activations (GELU), softmax, scaling, residual additions,
dropout, the weight-norm reparametrisation, MelHuBERT's 512-way cluster head and the zoo's prediction heads
(neither is used to compute hidden states), and MelHuBERT's log-Mel feature extraction (its input is features;
its cost is timed separately in the real-time factor). MelHuBERT's 1 s input is 100 frames at 10 ms and 50
stacked frames at 20 ms; a zoo model's 1 s input is 16,000 samples (49 CNN frames; 24 after FitHuBERT's time
reduction). Attention is quadratic in T, so MACs per second hold for 1-second inputs.
"""


def _mask_aware_hooks(model, masks: dict) -> dict:
    """ptflops op hooks that count a masked weight's non-zero entries only; identical to ptflops when unmasked."""
    params = dict(model.named_parameters())
    # operands are (views of) the parameters themselves: look them up by storage address
    nonzero = {params[n].data_ptr(): (int(m.sum()), m.numel()) for n, m in masks.items() if m.numel() > 0}

    def scale(macs: int, *operands) -> int:
        for t in operands:
            if isinstance(t, torch.Tensor) and t.numel() > 0 and t.data_ptr() in nonzero:
                nnz, numel = nonzero[t.data_ptr()]
                macs = macs * nnz // numel  # exact: the dense count is a multiple of the operand's size
        return macs

    def mm(inputs, outputs):
        return scale(matmul_flop(inputs, outputs), inputs[0], inputs[1])

    def addmm(inputs, outputs):
        bias, mat1, mat2 = inputs[:3]
        macs = scale(mat1.shape[0] * mat1.shape[1] * mat2.shape[1], mat1, mat2)
        if bias is not None:
            macs += scale(mat1.shape[0] * mat2.shape[1], bias)  # one addition per output element
        return macs

    def bmm(inputs, outputs):
        return scale(bmm_flop(inputs, outputs), inputs[0], inputs[1])

    def convolution(inputs, outputs):
        x, w, b = inputs[:3]
        out = outputs[0]
        macs = scale(conv_flop_count(x.shape, w.shape, out.shape, transposed=bool(inputs[6]), bias=False), w)
        if b is not None:
            macs += scale(out.shape[0] * out.shape[1] * out[0, 0].numel(), b)
        return macs

    aten = torch.ops.aten
    return {
        aten.mm: mm, aten.addmm: addmm, aten.bmm: bmm, aten.convolution: convolution, aten._convolution: convolution
    }


def count_macs(model, inputs: dict, masks: dict | None = None) -> int:
    """MACs of one forward `model(**inputs)`, counted by ptflops' aten counter (attention included)."""
    masks = check_masks(model, masks)
    counter = FlopCounterMode(module=None, custom_hooks=_mask_aware_hooks(model, masks))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            model(**inputs)
    finally:
        model.train(was_training)
    return int(counter.complexity)


def macs_per_second(model, masks: dict | None = None, num_layers: int | None = None, seconds: float = 1.0) -> int:
    """MACs per second of speech (ptflops, see COUNTING_CONVENTION): the MACs of a `seconds`-long input / seconds.

    `masks`: weight-pruning masks {param name: bool tensor}; masked weights count no MACs.
    `num_layers`: profile the first-k-layers truncation of the model.
    """
    inputs = example_inputs(model, seconds, batch=1, num_layers=num_layers, device=model_device(model))
    return round(count_macs(model, inputs, masks) / seconds)



class _Replay(torch.nn.Module):
    """One recorded call of `module`, replayed by `forward()` (so that `count_macs` counts that call alone)."""

    def __init__(self, module: torch.nn.Module, args: tuple, kwargs: dict):
        super().__init__()
        self.module, self.args, self.kwargs = module, args, kwargs

    def forward(self):
        return self.module(*self.args, **self.kwargs)


def macs_by_part(model: torch.nn.Module, num_layers: int | None = None) -> dict[str, int]:
    """MACs of a 1-second forward spent in the wav CNN (zoo models; 0 for MelHuBERT), the attention blocks and the
    feed-forward layers. The forward is recorded once (every call of those modules with its inputs), then each call
    is replayed alone under the same counter as `count_macs`; what runs before the first layer is the rest
    (`macs_per_second(model, num_layers=0)`), so front end + attention + feed-forward = `macs_per_second`."""
    parts = {"cnn": [model.feature_extractor] if isinstance(model, WavEncoder) else [],
             "attention": [layer.self_attn for layer in model.layers],
             "ffn": [m for layer in model.layers for m in (layer.fc1, layer.fc2)]}
    calls = []  # (part, module, args, kwargs) of every call, in order

    def recorder(part):
        return lambda module, args, kwargs: calls.append((part, module, args, kwargs))

    hooks = [m.register_forward_pre_hook(recorder(part), with_kwargs=True) for part, ms in parts.items() for m in ms]
    try:
        with torch.no_grad():
            model(**example_inputs(model, 1.0, num_layers=num_layers))
    finally:
        for h in hooks:
            h.remove()
    macs = dict.fromkeys(parts, 0)
    for part, module, args, kwargs in calls:
        macs[part] += count_macs(_Replay(module, args, kwargs), {})
    return macs
