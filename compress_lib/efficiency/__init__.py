"""Efficiency metrics: parameters, MACs per second of speech, real-time factor, operator calls.

    count_parameters(model, masks=None, num_layers=None) -> dict      total / params / nonzero / per component
    macs_per_second(model, masks=None, num_layers=None) -> int        ptflops (aten), attention included
    macs_by_part(model, num_layers=None) -> {cnn, attention, ffn}     where a 1-second forward's MACs go
    real_time_factor(model, seconds=10, batch=1, device="cpu", repeats=5, num_layers=None) -> dict
    interleaved_real_time_factors([(model, num_layers), ...], seconds=10, repeats=10) -> [dict]  taking turns
    operator_calls(model, seconds=1, batch=1, device="cpu", num_layers=None) -> int
    profile_model(model, masks=None, num_layers=None, seconds=10, batch=1, device="cpu") -> dict
    runtime_breakdown(model, inputs, repeats=5) -> DataFrame        share of operator time per category
    operator_category(name) -> str                                    matmul / attention / convolution / ...

Every measured count has a closed-form twin in `closed_form` (tests hold them equal); `COUNTING_CONVENTION`
states exactly what the MAC count includes. `sparse` times weight-pruned models with a sparse (CSR) kernel;
`breakdown` splits a forward's CPU time by operator type and rebuilds the architecture of a recorded point.
"""

from compress_lib.efficiency.breakdown import (
    CATEGORIES,
    by_category,
    operator_category,
    point_config,
    profile_in_turns,
    profile_operators,
    runtime_breakdown,
    sparsest_point,
)
from compress_lib.efficiency.closed_form import (
    closed_form_macs,
    closed_form_macs_per_second,
    closed_form_num_params,
)
from compress_lib.efficiency.macs import COUNTING_CONVENTION, count_macs, macs_by_part, macs_per_second
from compress_lib.efficiency.ops import operator_call_counts, operator_calls
from compress_lib.efficiency.params import component_of, count_parameters
from compress_lib.efficiency.profile import profile_model
from compress_lib.efficiency.runtime import (
    interleaved_real_time_factors,
    log_mel_features,
    real_time_factor,
    rtf_sweep,
)

__all__ = [
    "CATEGORIES",
    "COUNTING_CONVENTION",
    "by_category",
    "closed_form_macs",
    "closed_form_macs_per_second",
    "closed_form_num_params",
    "component_of",
    "count_macs",
    "count_parameters",
    "interleaved_real_time_factors",
    "log_mel_features",
    "macs_by_part",
    "macs_per_second",
    "operator_call_counts",
    "operator_calls",
    "operator_category",
    "point_config",
    "profile_in_turns",
    "profile_operators",
    "profile_model",
    "real_time_factor",
    "rtf_sweep",
    "runtime_breakdown",
    "sparsest_point",
]
