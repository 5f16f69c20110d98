"""compress_lib.prior_work (notebook 10's models and rows) and efficiency.macs_by_part."""

import pandas as pd
import pytest

from compress_lib.efficiency import macs_by_part, macs_per_second
from compress_lib.errors import CompressLibError
from compress_lib.prior_work import MODEL_CHOICES, catalogue, measure, parse_models, with_shares
from compress_lib.zoo import build_zoo_model

TIMING = {"seconds": 1.0, "warmup": 0, "repeats": 1}


def test_parse_models_keeps_the_study_order_and_names_the_choices():
    assert parse_models("all") == list(MODEL_CHOICES)
    assert parse_models("melhubert, distilhubert") == ["distilhubert", "melhubert"]
    for bad in ("", "gpt", 3):
        with pytest.raises(CompressLibError, match="models must be"):
            parse_models(bad)


def test_catalogue_lists_prior_work_then_melhubert_sizes_and_truncations():
    names = [e.name for e in catalogue(["distilhubert", "melhubert"], "smoke", [10, 20], 20)]
    assert names == ["distilhubert", "MelHuBERT-10ms (smoke preset)", "MelHuBERT-20ms (smoke preset)",
                     "MelHuBERT-20ms (paper size)", "MelHuBERT-20ms first-6 (paper size)",
                     "MelHuBERT-20ms first-2 (paper size)"]
    assert [e.name for e in catalogue(["melhubert"], "paper", [20], 20)] == [
        "MelHuBERT-20ms (paper size)", "MelHuBERT-20ms first-6 (paper size)", "MelHuBERT-20ms first-2 (paper size)"]


def test_macs_by_part_add_up_to_the_total_with_the_front_end():
    model = build_zoo_model("distilhubert", 0)
    parts = macs_by_part(model)
    assert parts["cnn"] > 0 and parts["attention"] > 0 and parts["ffn"] > 0
    assert macs_per_second(model, num_layers=0) + parts["attention"] + parts["ffn"] == macs_per_second(model)


def test_measure_a_smoke_melhubert_row():
    entry = catalogue(["melhubert"], "smoke", [20], 20)[0]
    row = measure(entry, seed=0, timing=TIMING)  # raises if the MACs disagree with the closed form or the parts
    assert row["macs_per_second"] == row["closed_form_macs_per_second"] > 0
    assert row["front_end_macs_per_second"] + row["attention_macs_per_second"] + row["ffn_macs_per_second"] \
        == row["macs_per_second"]
    assert row["cnn_macs_per_second"] == 0 and row["published_per"] is None and row["real_time_factor"] > 0
    shares = with_shares(pd.DataFrame([row]))
    assert 0 < shares["front_end_mac_share"].iloc[0] < 1 and shares["cnn_mac_share"].iloc[0] == 0
