"""The intro's findings are computed from the committed results and say exactly what verdicts.csv says."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from compress_lib import figure_style
from compress_lib.findings import (caveat_markdown, deployment_findings_markdown, findings_markdown, sparse_kernel_sentence, heads_ffn_runtime_ratio, runtime_against_size_figure,
                                   size_runtime_answer, truncation_caveat)
from compress_lib.results import read_summary, summary_frame

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "data" / "results" / "study"
sys.path.insert(0, str(ROOT / "tools"))


@pytest.fixture(scope="module")
def committed():
    summary = summary_frame(read_summary(RESULTS / "summary.csv"))
    verdicts = pd.read_csv(RESULTS / "09_efficiency" / "verdicts.csv")
    return summary, verdicts, findings_markdown(summary, verdicts)


def table_rows(markdown: str) -> dict[str, list[str]]:
    """Finding id -> the cells of its row in the verdict table."""
    rows = {}
    for line in markdown.splitlines():
        match = re.match(r"\| \*\*([\w-]+)\*\* ", line)
        if match:
            rows[match.group(1)] = [c.strip() for c in line.strip("|").split(" | ")]
    return rows


def test_every_verdict_of_the_csv_is_in_the_findings_table_and_evidence(committed):
    summary, verdicts, markdown = committed
    rows = table_rows(markdown)
    rates = [20, 10]  # the table's columns after the finding
    assert set(rows) == set(verdicts["id"])
    for v in verdicts.itertuples():
        assert rows[v.id][1 + rates.index(v.frame_ms)] == f"**{v.verdict}**", (v.id, v.frame_ms)
        assert f"- **{v.id}** ({v.verdict}): {v.ours}" in markdown  # the evidence, verbatim
        assert v.paper in rows[v.id][0]


def test_the_answer_numbers_are_the_ones_notebook_11_computed(committed):
    summary, verdicts, markdown = committed
    answers = json.loads((RESULTS / "11_smaller_faster" / "summary.json").read_text())["answers"]
    for committed_answer in answers:
        ours = size_runtime_answer(summary, committed_answer["frame_ms"])
        assert ours["models"] == committed_answer["models"]
        assert ours["fastest"] == committed_answer["fastest"]
        assert ours["macs_rank_correlation"] == pytest.approx(committed_answer["macs_rank_correlation"])
        assert f"{ours['macs_rank_correlation']:.2f}" in markdown


def test_head_ffn_ratio_is_the_one_verdict_f_reports(committed):
    summary, verdicts, markdown = committed
    for v in verdicts[verdicts["id"] == "f"].itertuples():
        ratio = heads_ffn_runtime_ratio(summary, v.frame_ms)
        if v.verdict == "not measured":
            assert ratio is None
        else:
            assert f"geometric mean {ratio:.2f}" in v.ours and f"{ratio:.2f} at {v.frame_ms} ms" in markdown


def tiny_summary() -> pd.DataFrame:
    rows = [  # model, method, density, MACs, non-zero parameters, real-time factor, PER
        ("dense", "dense", 1.0, 100, 1000, 0.10, 30.0),
        ("weight-0.3", "weight", 0.3, 30, 300, 0.10, 34.0),
        ("heads-0.5", "heads", 0.5, 80, 800, 0.06, 31.0),
        ("ffn-0.5", "ffn", 0.5, 60, 600, 0.08, 32.0),
        ("distill-0.5", "distill", 0.5, 50, 500, 0.05, 33.0),
        ("truncate-0.5", "truncate", 0.5, 50, 500, 0.05, 29.0),
    ]
    return summary_frame([{"model": m, "method": k, "density": d, "frame_ms": 20, "params": p, "nonzero_params": p,
                           "macs_per_second": macs, "real_time_factor": rtf, "per": per}
                          for m, k, d, macs, p, rtf, per in rows])


def test_answer_and_caveat_on_a_small_table():
    summary = tiny_summary()
    answer = size_runtime_answer(summary, 20)
    assert answer["models"] == 6 and answer["weight_model"] == "weight-0.3" and answer["weight_density"] == 0.3
    crossover = pd.DataFrame({"size": ["study", "paper"], "frame_ms": [20, 20], "crossover_density": [0.15, 0.2]})
    assert sparse_kernel_sentence(crossover, 0.3).endswith(
        "below a density of 0.15 to 0.20 (study size and paper size, notebook 12), sparser than the study's weight "
        "pruning goes (0.30).")
    assert "which the study's sparsest weight-pruned model (0.10) reaches" in sparse_kernel_sentence(crossover, 0.1)
    assert sparse_kernel_sentence(crossover.iloc[:0], 0.3) is None
    assert answer["weight_macs_fraction"] == pytest.approx(0.3) and answer["weight_rtf_fraction"] == pytest.approx(1)
    assert answer["fastest"] in ("distill-0.5", "truncate-0.5") and answer["fastest_rtf_fraction"] == 0.5
    assert size_runtime_answer(summary, 10) is None
    caveat = truncation_caveat(summary, 20)
    assert "1/2 of the layers (truncate-0.5) reach PER 29.0 %" in caveat and "30.0 %" in caveat
    assert "distilled student of its depth (33.0 %)" in caveat
    assert truncation_caveat(summary[summary["method"] != "truncate"], 20) is None


def test_without_verdicts_the_findings_say_they_are_pending():
    text = findings_markdown(tiny_summary(), None, source="data/results/smoke")
    assert "Results pending" in text and "data/results/smoke/09_efficiency/verdicts.csv" in text
    assert not re.search(r"\d\.\d\d", text)  # no number stands in for a result


def test_headline_figure_styles_each_method_once_and_tells_rates_by_fill():
    summary = pd.concat([tiny_summary(), tiny_summary().assign(frame_ms=10)], ignore_index=True)
    fig = runtime_against_size_figure(summary)
    points = [t for t in fig.data if t.legendgroup]
    for t in points:
        method = next(m for m in figure_style.METHOD_STYLES if t.name.startswith(figure_style.label(m) + ","))
        assert t.marker.color == figure_style.style(method).colour
        assert t.marker.symbol.endswith("-open") == t.name.endswith("10 ms")
    assert len({t.name for t in points}) == 12  # 6 methods x 2 rates, each once in the legend
    assert sum(t.showlegend for t in points) == 12


def test_build_writes_the_findings_the_intro_includes(tmp_path):
    import build_book

    out = build_book.write_findings("study", out_dir=tmp_path)
    crossover = pd.read_csv(RESULTS / "12_runtime_anatomy" / "crossover.csv")
    assert out.read_text() == findings_markdown(summary_frame(read_summary(RESULTS / "summary.csv")),
                                                pd.read_csv(RESULTS / "09_efficiency" / "verdicts.csv"),
                                                crossover=crossover)
    low = crossover["crossover_density"].min()
    assert f"only below a density of {low:.2f}" in out.read_text()  # notebook 12's measurement, as computed
    summary = summary_frame(read_summary(RESULTS / "summary.csv"))
    assert (tmp_path / "caveat.md").read_text() == caveat_markdown(summary) != ""
    assert "```{include} _generated/caveat.md" in (ROOT / "book" / "smaller_faster.md").read_text()
    intro = (ROOT / "book" / "intro.md").read_text()
    assert "```{include} _generated/findings.md" in intro
    assert intro.index("{include} _generated/findings.md") < intro.index("## What the study asks")
    assert build_book.GENERATED_DIR == ROOT / "book" / "_generated"


def test_the_appendix_says_how_long_the_committed_run_took_from_its_records(tmp_path):
    """One whole run: its wall time and layout from study_run.json; a run in parts: said so, with the total only."""
    import build_book

    rows = pd.DataFrame({"notebook": ["corpus", "02_pretrain", "total", "wall time"],
                         "duration_s": ["61.0", "2000.0", "9000.0", "8130.4"]})
    whole = {"jobs": 2, "cpu_count": 2, "started_utc": "2026-12-06T00:35:01Z", "corpus_s": 61.0}
    text = build_book.run_summary_markdown(rows, whole)
    assert text.startswith("**One run of `make study`: 2 h 15 min.**") and "`--jobs 2`" in text
    assert "2026-12-06 00:35:01 UTC" in text and "add up to 2 h 30 min" in text
    parts = build_book.run_summary_markdown(rows[rows["notebook"] != "wall time"], None)
    assert parts.startswith("**Made in parts.**") and "2 h 30 min" in parts
    assert "not been made" in build_book.run_summary_markdown(pd.DataFrame(columns=["notebook"]), None)
    out = build_book.write_run_summary(ROOT / "data" / "results", tmp_path)  # the committed run's, as the book
    assert out.name == "run_summary_study.md" and out.read_text().startswith("**")
    assert "{include} _generated/run_summary_study.md" in (ROOT / "book" / "reproducibility.md").read_text()


def test_build_writes_run_time_tables_the_book_can_show_at_page_width(tmp_path):
    import build_book

    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "run_times.csv").write_text(
        "notebook,frame_rates,threads,start_s,duration_s,finished_utc,parts\n"
        "02_pretrain,\"10,20\",,0,2303.6,2026-12-01T16:56:44Z,\"20 ms: 705.7 s\"\n")
    study, lab = build_book.write_run_times(tmp_path, tmp_path / "out")
    table = pd.read_csv(study, dtype=str, keep_default_na=False)
    assert list(table.columns) == list(build_book.BOOK_RUN_TIME_COLUMNS) and "finished_utc" not in table
    assert table.iloc[0].to_dict() == {"notebook": "02_pretrain", "frame_rates": "10,20", "threads": "",
                                       "start_s": "0", "duration_s": "2303.6", "parts": "20 ms: 705.7 s"}
    assert "not run yet: make study PRESET=lab" in lab.read_text()  # no lab run in this folder: said so
    for page in ("teaching", "reproducibility"):
        text = (ROOT / "book" / f"{page}.md").read_text()
        assert "run_times.csv\n" not in text and ":file: _generated/run_times_" in text


def test_the_deployment_chapter_says_what_notebook_14s_verdicts_say(tmp_path):
    import build_book

    verdicts = pd.read_csv(RESULTS / "14_deployment" / "verdicts.csv")
    build_book.write_findings("study", out_dir=tmp_path)
    markdown = (tmp_path / "deployment_findings.md").read_text()
    assert markdown == deployment_findings_markdown(verdicts)
    rows = table_rows(markdown)
    assert set(rows) == set(verdicts["id"]) == {"int8", "ort", "ranking"}
    for v in verdicts.itertuples():
        assert rows[v.id][1 + [20, 10].index(v.frame_ms)] == f"**{v.verdict}**", (v.id, v.frame_ms)
        assert f"- **{v.id}** ({v.verdict}): {v.ours}" in markdown
    chapter = (ROOT / "book" / "deployment.md").read_text()
    assert "```{include} _generated/deployment_findings.md" in chapter
    assert "Results pending" in deployment_findings_markdown(None)
