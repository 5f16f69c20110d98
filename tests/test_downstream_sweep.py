"""Which trajectory points notebook 08 evaluates (compress_lib.downstream.sweep)."""

import pandas as pd
import pytest

from compress_lib.downstream.sweep import (
    COMPRESSION_TABLES,
    model_name,
    points_to_evaluate,
    spread,
    trajectory_points,
)


def trajectory(densities, method="heads", frame_ms=20, variant=""):
    return pd.DataFrame({"method": method, "frame_ms": frame_ms, "variant": variant, "density": densities,
                         "checkpoint": [f"{method}/{d}" for d in densities]})


HEADS = [1 - i / 12 for i in range(1, 10)]  # 9 points after the dense model: 0.9167 .. 0.25


@pytest.mark.parametrize("k, expected", [
    (1, [0.25]),  # the end of the trajectory
    (2, [HEADS[4], 0.25]),  # half way and the end
    (3, [0.75, 0.5, 0.25]),  # positions 3, 6, 9 of 9
    (9, HEADS), (12, HEADS), (0, HEADS),  # every point
])
def test_spread_keeps_points_evenly_spaced_from_the_dense_model(k, expected):
    shuffled = trajectory(HEADS).sample(frac=1, random_state=0)
    assert spread(shuffled, k)["density"].tolist() == pytest.approx(expected)


def test_spread_of_ten_points_rounds_half_up():
    densities = [0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.325, 0.3]
    assert spread(trajectory(densities), 3)["density"].tolist() == [0.7, 0.4, 0.3]  # positions 3, 7 (6.67), 10
    assert spread(trajectory(densities), 4)["density"].tolist() == [0.7, 0.5, 0.35, 0.3]  # 3 (2.5 up), 5, 8 (7.5), 10


def test_students_and_truncations_are_all_evaluated_and_pruning_is_spread():
    points = pd.concat([
        trajectory(HEADS, "heads", 20), trajectory(HEADS, "heads", 10),
        trajectory([0.5, 1 / 6], "distill", 10, "student"), trajectory([0.5, 1 / 6], "truncate", 10, "truncation"),
        trajectory([0.5, 1 / 6], "distill", 20, "student, masked input"),
    ], ignore_index=True)
    chosen = points_to_evaluate(points, {10: 1, 20: 3})
    count = chosen.groupby(["method", "frame_ms", "variant"]).size().to_dict()
    assert count == {("distill", 10, "student"): 2, ("distill", 20, "student, masked input"): 2,
                     ("heads", 10, ""): 1, ("heads", 20, ""): 3, ("truncate", 10, "truncation"): 2}


def test_model_names_mark_ablations_only():
    assert model_name("heads", 0.25) == "heads-0.25"
    assert model_name("weight", 0.30000004226171156) == "weight-0.3"
    assert model_name("distill", 0.5, "student") == "distill-0.5"
    assert model_name("truncate", 1 / 6, "truncation") == "truncate-0.1667"
    assert model_name("distill", 0.5, "student, masked input") == "distill-0.5 (student, masked input)"


def test_trajectory_points_reads_the_tables_without_the_teacher_and_reports_missing_ones(tmp_path):
    stem, file = COMPRESSION_TABLES["heads"]
    (tmp_path / stem).mkdir()
    pd.DataFrame({"method": "heads", "frame_ms": [20, 20, 20, 10], "stage": ["teacher", "remove 2 heads",
                  "remove 2 heads", "remove 2 heads"], "density": [1.0, 0.9167, 0.8333, 0.9167],
                  "checkpoint": ["a", "b", "c", "d"]}).to_csv(tmp_path / stem / file, index=False)
    points, missing = trajectory_points(tmp_path, [20])
    assert points["name"].tolist() == ["heads-0.9167", "heads-0.8333"]
    assert points["variant"].tolist() == ["", ""]
    assert len(missing) == len(COMPRESSION_TABLES) - 1 and f"{stem}/{file}" not in missing


def test_check_points_reads_the_preset_or_the_given_count():
    from compress_lib.downstream.sweep import check_points
    from compress_lib.errors import CompressLibError

    assert check_points(-1, "study") == {10: 1, 20: 3}
    assert check_points(0, "study") == {10: 0, 20: 0} and check_points(2, "lab") == {10: 2, 20: 2}
    for bad in (-2, 1.5, True, "3"):
        with pytest.raises(CompressLibError, match="max_points_per_method"):
            check_points(bad, "study")


def test_cost_minutes_sum_the_recorded_seconds_per_rate_and_task():
    from compress_lib.downstream.sweep import cost_minutes

    costs = [{"frame_ms": 20, "task": "pr", "cpu_hidden_states": 60.0, "cpu_probe": 30.0, "cpu_total": 90.0},
             {"frame_ms": 20, "task": "pr", "cpu_hidden_states": 120.0, "cpu_probe": 30.0, "cpu_total": 150.0},
             {"frame_ms": 20, "task": "sid"}]  # an evaluation recorded before costs were recorded
    table = cost_minutes(costs)
    assert table.loc[(20, "pr")].to_dict() == {"evaluations": 2, "cpu_hidden_states": 3.0, "cpu_probe": 1.0,
                                               "cpu_total": 4.0}
    assert cost_minutes([{"frame_ms": 20, "task": "pr"}]).empty


def test_sanity_checks_need_both_per_margins_and_sid_at_least_fbank():
    from compress_lib.downstream.sweep import PER_MARGIN, sanity_checks

    def results(dense_per, dense_sid):
        return pd.DataFrame({"frame_ms": 20, "method": ["dense", "random-init", "fbank"],
                             "per": [dense_per, 40.0, 50.0], "sid_accuracy": [dense_sid, 55.0, 56.0]})
    assert sanity_checks(results(30.0, 57.0), [20]).loc[20, "holds"]
    assert not sanity_checks(results(40.0 - PER_MARGIN + 0.1, 57.0), [20]).loc[20, "holds"]  # twin too close
    assert not sanity_checks(results(30.0, 55.9), [20]).loc[20, "holds"]  # SID below log-Mel
