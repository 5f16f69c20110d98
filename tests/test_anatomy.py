"""compress_lib.efficiency.anatomy: notebook 12's sweep table, crossover table and breakdown models."""

import pandas as pd
import pytest

from compress_lib.efficiency.anatomy import breakdown_candidates, crossover_table, parse_densities
from compress_lib.errors import CompressLibError


def test_parse_densities_sorts_and_refuses_what_is_not_a_density():
    assert parse_densities("0.1,1,0.5") == [1.0, 0.5, 0.1]
    assert parse_densities(0.5) == [0.5]  # papermill passes a lone number as a number
    for bad in ("", "0", "1.5", "0.5,0.5", "a", None):
        with pytest.raises(CompressLibError, match="densities must be"):
            parse_densities(bad)


def test_crossover_table_finds_the_density_below_which_csr_wins():
    densities = [1.0, 0.5, 0.2, 0.1]
    ratios = [3.0, 1.5, 0.8, 0.4]  # sparse / dense time: CSR wins from 0.2 down
    kernels = pd.DataFrame({"size": "smoke", "frame_ms": 20, "frames": 50, "layers": 4, "width": 32, "ffn": 64,
                            "layer_weights": 1000, "density": densities, "ratio": ratios,
                            "ratio_q1": [r * 0.9 for r in ratios], "ratio_q3": [r * 1.1 for r in ratios],
                            "dense_s": 1e-3, "threads": 1, "repeats": 3})
    row = crossover_table(kernels).iloc[0]
    assert row["wins_at_or_below"] == 0.2 and row["loses_at"] == 0.5
    assert 0.2 < row["crossover_density"] < 0.5 and row["ratio_at_density_1"] == 3.0
    assert row["sparsest_density"] == 0.1 and row["ratio_at_sparsest"] == 0.4 and row["shape"] == "4 x 32, FFN 64"


def test_breakdown_candidates_without_tables_is_the_dense_model_and_says_what_is_left_out(tmp_path):
    candidates, left_out = breakdown_candidates(tmp_path, "smoke", 20, seed=0, sizes=("smoke",))
    assert [c["model"] for c in candidates] == ["dense"]
    assert len(left_out) == 5 and all("does not exist" in note for note in left_out)
    assert candidates[0]["build"]().cfg.num_layers > 0
