"""compress_lib.efficiency.study_costs (notebook 09's measurements) and the verdict helpers it uses."""

import pandas as pd

from compress_lib import verdicts
from compress_lib.config import config_for_preset
from compress_lib.efficiency.study_costs import (
    build_on_meta, checkpoint_of, models_to_time, parameter_table, time_in_turns, truncation_costs,
)

TIMING = {"seconds": 1.0, "warmup": 0, "repeats": 1}


def test_parameter_table_places_every_parameter_once():
    model = build_on_meta("smoke", 20)
    table = parameter_table(model, "smoke")
    assert table["parameters"].sum() == sum(p.numel() for p in model.parameters())
    layers = config_for_preset("smoke", 20).num_layers
    assert set(table["where"]) == {"front-end", "cluster head", *(f"layer {i + 1}" for i in range(layers))}


def test_truncation_costs_cover_both_rates_and_the_shorter_depths():
    costs = truncation_costs("smoke", depths=(1, 2, 99), timing=TIMING)
    layers = config_for_preset("smoke", 20).num_layers
    assert list(costs["model"]) == ["MelHuBERT full", "MelHuBERT first-2", "MelHuBERT first-1"] * 2
    assert list(costs["frame_ms"]) == [10] * 3 + [20] * 3 and list(costs["layers"][:3]) == [layers, 2, 1]
    assert (costs["macs_per_second"] == costs["closed_form_macs_per_second"]).all()
    assert (costs["real_time_factor"] > 0).all()


def test_models_to_time_are_the_evaluated_models_with_a_checkpoint_on_disk(tmp_path):
    from conftest import make_synthetic_teacher

    ckpt = make_synthetic_teacher(tmp_path, 2)[0]
    summary = pd.DataFrame({"model": ["dense", "random-init", "fbank", "gone"], "method": ["dense", "random-init",
                            "fbank", "heads"], "frame_ms": 20, "density": [1.0, 1.0, None, 0.5]})
    downstream = tmp_path / "downstream.csv"
    pd.DataFrame({"model": ["dense", "random-init", "fbank", "gone"], "frame_ms": 20,
                  "checkpoint": [str(ckpt), f"random-init:{ckpt}", None, str(tmp_path / "gone.pt")]}).to_csv(
        downstream, index=False)
    candidates, to_time = models_to_time(summary, downstream)
    assert len(candidates) == 4 and list(to_time["model"]) == ["dense", "random-init"]
    assert checkpoint_of(None) is None and checkpoint_of(str(tmp_path / "gone.pt")) is None
    timings = time_in_turns(to_time, TIMING, pass_repeats=2)
    assert list(timings["model"]) == ["dense", "random-init"] and (timings["repeats"] == 2).all()
    assert (timings["real_time_factor"] > 0).all() and (timings["one_after_another_real_time_factor"] > 0).all()


def test_judged_models_and_verdicts_at_every_rate():
    summary = pd.DataFrame({"model": ["dense", "heads-0.5", "heads-0.5", "fbank"], "method": ["dense", "heads",
                            "heads", "fbank"], "frame_ms": [20, 20, 10, 20], "density": [1.0, 0.5, 0.5, None],
                            "per": [30.0, 31.0, None, 50.0], "sid_accuracy": [60.0, 59.0, None, 55.0]})
    assert list(verdicts.judged_models(summary)["model"]) == ["heads-0.5"]
    table = verdicts.study_verdicts(summary)
    assert set(table["frame_ms"]) == {10, 20}
    assert "PER <= dense + 2 points" in verdicts.criteria_text()


def test_parameter_totals_and_the_same_work_spread():
    from compress_lib.efficiency.study_costs import parameter_totals, same_work_spread

    totals = parameter_totals(parameter_table(build_on_meta("smoke", 20), "smoke"))
    row = totals.loc["smoke"]
    assert row["total"] == row["without head"] + row["heads"] and 0 < row["FFN share of the layers"] < 1
    timings = pd.DataFrame({"method": ["dense", "random-init", "heads"], "frame_ms": 20,
                            "real_time_factor": [0.010, 0.011, 0.005],
                            "one_after_another_real_time_factor": [0.010, 0.015, 0.005]})
    (line,) = same_work_spread(timings)
    assert line.startswith("20 ms, 2 models doing the same work") and "(max/min 1.50)" in line and \
        "(max/min 1.10)" in line
