"""What the study found, in words and one figure, computed from the committed results.

The book's first page states the study's answer to its title question. That text is never typed by hand:
`findings_markdown(summary, verdicts)` writes it from the results table (`summary.csv`) and the verdicts of the
efficiency notebook (`09_efficiency/verdicts.csv`), and `tools/build_book.py` includes it in the intro at every
build, so a rerun of the study updates the answer. Its parts are small functions that notebook 11 uses too:

    size_runtime_answer(summary, frame_ms)   does ordering models by size order them by runtime? (one dict)
    truncation_caveat(summary, frame_ms)     untrained truncations against the dense model on PR (one sentence)
    runtime_against_size_figure(summary)     runtime against MACs and parameters, relative to dense (plotly)
"""

from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from compress_lib import figure_style
from compress_lib.plotting import figure_html
from compress_lib.verdicts import (PER_TOLERANCE, RTF_TOLERANCE, VERDICTS, heads_ffn_runtime_ratio, rank_correlation,
                                   relative_cost, rows_at)

PAPER_FRAME_MS = 20  # the paper's main model, MelHuBERT-20ms: the rate findings are stated at first
FINDING_ORDER = ("a-PR", "a-SID", "b-PR", "b-SID", "c", "d", "e", "f", "g")


def size_runtime_answer(summary: pd.DataFrame, frame_ms: int) -> dict | None:
    """The title question at one frame rate, over every main model with a measured cost (None without them).

    Keys: frame_ms, models (count), macs_rank_correlation (Spearman, MACs per second against real-time factor,
    weight-pruned models left out: their MACs count masked weights as removed, but the CPU computes them),
    params_rank_correlation (non-zero parameters against real-time factor, every model), fastest and
    fastest_rtf_fraction, fewest_macs (weight pruning aside), and the sparsest weight-pruned model's
    weight_model / weight_macs_fraction / weight_rtf_fraction (None without one).
    """
    table = relative_cost(summary, frame_ms)
    if table.empty:
        return None
    structured = table[table["method"] != "weight"]
    weight = table[table["method"] == "weight"]
    fastest = table.loc[table["rtf_fraction"].idxmin()]
    sparsest_weight = weight.loc[weight["density"].idxmin()] if len(weight) else None
    return {
        "frame_ms": int(frame_ms), "models": len(table),
        "macs_rank_correlation": rank_correlation(structured["macs_fraction"], structured["rtf_fraction"]),
        "params_rank_correlation": rank_correlation(table["params_fraction"], table["rtf_fraction"]),
        "fastest": fastest["model"], "fastest_rtf_fraction": float(fastest["rtf_fraction"]),
        "fewest_macs": structured.loc[structured["macs_fraction"].idxmin(), "model"],
        "weight_model": None if sparsest_weight is None else sparsest_weight["model"],
        "weight_density": None if sparsest_weight is None else float(sparsest_weight["density"]),
        "weight_macs_fraction": None if sparsest_weight is None else float(sparsest_weight["macs_fraction"]),
        "weight_rtf_fraction": None if sparsest_weight is None else float(sparsest_weight["rtf_fraction"]),
    }


def layer_fraction(density: float) -> str:
    """'1/2' for 0.5, '1/6' for 0.1667: a truncation's share of the teacher's layers."""
    return str(Fraction(float(density)).limit_denominator(24))


def truncation_caveat(summary: pd.DataFrame, frame_ms: int, per_tolerance: float = PER_TOLERANCE) -> str | None:
    """One sentence: which untrained truncations (the first layers of the dense model, nothing retrained) keep
    phone recognition within `per_tolerance` PER points of the dense model, and how the distilled students of
    the same depth compare. None when no truncation is within tolerance (or the rows are missing)."""
    table = rows_at(summary, frame_ms).dropna(subset=["per"])
    dense = table[table["method"] == "dense"]
    cut = table[table["method"] == "truncate"].sort_values("density")
    if dense.empty or cut.empty:
        return None
    dense_per = float(dense["per"].iloc[0])
    keeping = cut[cut["per"] <= dense_per + per_tolerance]
    if keeping.empty:
        return None
    parts = [f"the first {layer_fraction(r.density)} of the layers ({r.model}) reach PER {r.per:.1f} %"
             for r in keeping.itertuples()]
    students = table[table["method"] == "distill"].set_index("density")["per"]
    beaten = [r for r in cut.itertuples() if r.density in students.index and r.per < students[r.density]]
    versus = (f"; each is better than the distilled student of its depth ({', '.join(f'{students[r.density]:.1f} %' for r in beaten)})"
              if beaten and len(beaten) == len(cut) else "")
    return (f"At {frame_ms} ms, with nothing retrained, {' and '.join(parts)} against the dense model's "
            f"{dense_per:.1f} %{versus}.")


def runtime_against_size_figure(summary: pd.DataFrame, frame_rates=(20, 10), height: int = 520) -> go.Figure:
    """Every model's real-time factor against its MACs per second (left) and non-zero parameters (right), all as
    fractions of the dense model's, log-log, with the diagonal on which runtime falls exactly with size."""
    measures = {"macs_fraction": "MACs per second, fraction of dense",
                "params_fraction": "non-zero parameters, fraction of dense"}
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=["against MACs", "against parameters"])
    tables = {rate: relative_cost(summary, rate) for rate in frame_rates}
    values = pd.concat([t[[*measures, "rtf_fraction"]] for t in tables.values() if len(t)] or [pd.DataFrame([1.0])])
    low = max(min(float(values.min().min()), 1.0) * 0.8, 1e-3)
    for col, measure in enumerate(measures, start=1):
        fig.add_scatter(x=[low, 1.2], y=[low, 1.2], mode="lines", line=dict(color="#999999", dash="dash", width=1),
                        name="runtime falls with size", showlegend=col == 1, hoverinfo="skip", row=1, col=col)
        for method, rate in method_rate_order(tables):
            group = tables[rate][tables[rate]["method"] == method]
            if len(group):
                fig.add_scatter(
                    x=group[measure], y=group["rtf_fraction"], mode="markers", name=figure_style.label(method, rate),
                    legendgroup=f"{method}{rate}", showlegend=col == 1, marker=figure_style.marker(method, rate),
                    customdata=group[["model", "per", "macs_fraction", "params_fraction"]].to_numpy(),
                    hovertemplate=(f"%{{customdata[0]}}, {rate} ms<br>MACs %{{customdata[2]:.2f}} of dense"
                                   "<br>parameters %{customdata[3]:.2f} of dense<br>runtime %{y:.2f} of dense"
                                   "<br>PER %{customdata[1]:.1f} %<extra></extra>"),
                    row=1, col=col)
        fig.update_xaxes(title_text=measures[measure], type="log", range=[_log10(low), _log10(1.2)],
                         tickvals=LOG_TICKS, row=1, col=col)
    fig.update_yaxes(title_text="real-time factor, fraction of dense", type="log",
                     range=[_log10(low), _log10(1.2)], tickvals=LOG_TICKS, row=1, col=1)
    fig.update_layout(height=height, margin=dict(l=70, r=20, t=40, b=40), template="plotly_white")
    figure_style.legend_below(fig, y=-0.22)
    return fig


LOG_TICKS = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]  # fractions of dense marked on log axes


def method_rate_order(tables: dict[int, pd.DataFrame]) -> list[tuple[str, int]]:
    """(method, frame rate) pairs in the book's method order, so that a legend lists each method's rates together."""
    present = {(m, rate) for rate, t in tables.items() for m in set(t["method"])}
    methods = [*figure_style.METHOD_STYLES, *sorted({m for m, _ in present} - set(figure_style.METHOD_STYLES))]
    return [(m, rate) for m in methods for rate in tables if (m, rate) in present]


def _log10(x: float) -> float:
    return math.log10(x)


def _cell(text) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def answer_sentences(summary: pd.DataFrame, frame_rates=(20, 10), crossover: pd.DataFrame | None = None
                     ) -> list[str]:
    """The study's answer to its title question in a few sentences, every number from `summary` (and notebook
    12's `crossover` table of sparse-kernel crossover densities, when given)."""
    answers = {rate: a for rate in frame_rates if (a := size_runtime_answer(summary, rate))}
    if not answers:
        return []
    main = answers.get(PAPER_FRAME_MS) or next(iter(answers.values()))
    others = [a for a in answers.values() if a is not main]

    sentences = [_rate_brackets(main, others)]
    if main["weight_model"] is not None:
        sentences.append(
            f"Weight pruning is where size misleads: its sparsest model, {main['weight_model']}, counts "
            f"{main['weight_macs_fraction']:.2f} of the dense model's MACs yet runs in "
            f"{main['weight_rtf_fraction']:.2f} of its time, because its zeroed weights are still multiplied.")
        if (sparse := sparse_kernel_sentence(crossover, main["weight_density"])) is not None:
            sentences.append(sparse)
    ratios = {rate: r for rate in frame_rates if (r := heads_ffn_runtime_ratio(summary, rate)) is not None}
    if ratios:
        text = ", ".join(f"{r:.2f} at {rate} ms" for rate, r in ratios.items())
        main_ratio = ratios.get(main["frame_ms"], next(iter(ratios.values())))
        how = ("less time than" if main_ratio < 1 - RTF_TOLERANCE else
               "more time than" if main_ratio > 1 + RTF_TOLERANCE else "about the same time as")
        sentences.append(f"At equal MACs, head-pruned models run in {how} FFN-pruned ones (their runtime ratio: "
                         f"{text}).")
    sentences.append(f"The fastest model is {main['fastest']}, at {main['fastest_rtf_fraction']:.2f} of the dense "
                     f"model's runtime ({main['frame_ms']} ms).")
    return sentences


def sparse_kernel_sentence(crossover: pd.DataFrame | None, weight_density: float | None = None) -> str | None:
    """One sentence on the density below which a sparse (CSR) kernel beats the dense one (notebook 12's
    `crossover.csv`: size, frame_ms, crossover_density), set against the sparsest weight-pruned model's density;
    None without a crossover measured."""
    if crossover is None or crossover.empty or crossover["crossover_density"].dropna().empty:
        return None
    found = crossover.dropna(subset=["crossover_density"])
    low, high = found["crossover_density"].min(), found["crossover_density"].max()
    span = f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f} to {high:.2f}"
    sizes = " and ".join(dict.fromkeys(f"{s} size" for s in found["size"]))
    reach = "" if weight_density is None else (
        f", sparser than the study's weight pruning goes ({weight_density:.2f})" if weight_density > high else
        f", which the study's sparsest weight-pruned model ({weight_density:.2f}) reaches" if weight_density < low
        else f", about where the study's weight pruning stops ({weight_density:.2f})")
    return (f"A sparse (CSR) kernel would turn weight pruning's zeros into saved time only below a density of "
            f"{span} ({sizes}, notebook 12){reach}.")


def _rate_brackets(main: dict, others: list[dict]) -> str:
    """The lead sentence: the rank correlations of the main frame rate, the other rates' in brackets."""
    def bracket(key: str) -> str:
        return " (" + "; ".join(f"{a['frame_ms']} ms: {a[key]:.2f}" for a in others) + ")" if others else ""

    return (f"**Smaller is faster on a CPU when the removed work leaves the computation, and not otherwise.** "
            f"Over the {main['models']} models of the {main['frame_ms']} ms study, MACs per second (weight pruning "
            f"aside) order the measured runtime with a rank correlation of "
            f"{main['macs_rank_correlation']:.2f}{bracket('macs_rank_correlation')}, parameters only with "
            f"{main['params_rank_correlation']:.2f}{bracket('params_rank_correlation')}.")


def ordered_ids(verdicts: pd.DataFrame) -> list[str]:
    """The findings' ids in the paper's order (unknown ones last, sorted)."""
    ids = set(verdicts["id"])
    return [i for i in FINDING_ORDER if i in ids] + sorted(ids - set(FINDING_ORDER))


def verdict_table(verdicts: pd.DataFrame, frame_rates=(20, 10), claim: str = "finding (what the paper reports)",
                  context: str = "Paper") -> str:
    """Markdown table: each finding (`claim`) with its `paper` column (labelled `context`), and our verdict at each
    frame rate."""
    rates = [r for r in frame_rates if r in set(verdicts["frame_ms"])]
    by = {(int(r.frame_ms), r.id): r for r in verdicts.itertuples()}
    head = [claim, *(f"ours, {r} ms" for r in rates)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i in ordered_ids(verdicts):
        first = next(by[(r, i)] for r in rates if (r, i) in by)
        cells = [f"**{i}** {first.finding}. *{context}: {first.paper}.*",
                 *(f"**{by[(r, i)].verdict}**" if (r, i) in by else "not run" for r in rates)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def evidence_list(verdicts: pd.DataFrame, frame_ms: int) -> str:
    """Markdown list: our evidence for each finding at one frame rate, one line each."""
    rows = verdicts[verdicts["frame_ms"] == frame_ms].set_index("id")
    return "\n".join(f"- **{i}** ({rows.loc[i, 'verdict']}): {rows.loc[i, 'ours']}"
                     for i in ordered_ids(verdicts) if i in rows.index)


def verdict_counts(verdicts: pd.DataFrame, frame_ms: int) -> str:
    """'6 reproduced, 1 not reproduced, ...' at one frame rate, in the order of VERDICTS."""
    counts = verdicts[verdicts["frame_ms"] == frame_ms]["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)


def caveat_markdown(summary: pd.DataFrame, frame_rates=(20, 10)) -> str:
    """A warning box on what the quality verdicts mean at this scale, or "" when no truncation keeps PR."""
    caveats = [c for r in frame_rates if (c := truncation_caveat(summary, r))]
    if not caveats:
        return ""
    return "\n".join(["```{admonition} Read the quality verdicts with care", ":class: warning", "",
                      "At this study's scale the pretrained model is small and briefly trained, and its first layers "
                      "alone already hold what phone recognition needs. " + " ".join(caveats) + " Findings c, d and "
                      "e, which compare the quality of compressed models, therefore say more about this small "
                      "teacher than about the methods (notebook 08, *Where the information lives*, shows where its "
                      "probes read); the findings on cost and runtime do not depend on it.", "```"])


def evidence_by_rate(verdicts: pd.DataFrame, rates: list[int]) -> list[str]:
    """The evidence of each verdict, the first frame rate's as a list, the others' in a collapsed box each."""
    out = []
    for n, rate in enumerate(rates):
        if n == 0:
            out += [f"The evidence at {rate} ms, computed from the results table:", "", evidence_list(verdicts, rate), ""]
        else:
            out += [f"```{{admonition}} The evidence at {rate} ms", ":class: dropdown", "",
                    evidence_list(verdicts, rate), "```", ""]
    return out


def deployment_findings_markdown(verdicts: pd.DataFrame | None, frame_rates=(20, 10),
                                 source: str = "data/results/study") -> str:
    """The deployment chapter's answer (MyST Markdown): notebook 14's verdicts on int8 and ONNX Runtime, each with
    its evidence, computed from its `verdicts.csv`."""
    if verdicts is None or verdicts.empty:
        return ("```{admonition} Results pending\n:class: warning\n\nThis edition has no deployment verdicts yet: "
                f"`notebooks/14_deployment.md` has not written `{source}/14_deployment/verdicts.csv`. Run "
                "`make study`.\n```\n")
    rates = [r for r in frame_rates if r in set(verdicts["frame_ms"])]
    counts = "; ".join(f"at {r} ms {verdict_counts(verdicts, r)}" for r in rates)
    out = [f"Of the three claims of deployment practice, {counts} (`14_deployment/verdicts.csv`; the rules are "
           "below, under *How the verdicts are decided*).", "", verdict_table(
               verdicts, rates, claim="claim (deployment practice)", context="Why it matters"), ""]
    return "\n".join(out + evidence_by_rate(verdicts, rates))


def findings_markdown(summary: pd.DataFrame, verdicts: pd.DataFrame | None, frame_rates=(20, 10),
                      source: str = "data/results/study", crossover: pd.DataFrame | None = None) -> str:
    """The intro's answer and its "What this study found" section (MyST Markdown), computed from the results."""
    if verdicts is None or verdicts.empty or summary.empty:
        return ("```{admonition} Results pending\n:class: warning\n\nThis edition has no verdicts yet: the study's "
                f"efficiency notebook has not written `{source}/09_efficiency/verdicts.csv`. Run `make study`.\n```\n")
    rates = [r for r in frame_rates if r in set(verdicts["frame_ms"])]
    out = [" ".join(answer_sentences(summary, rates, crossover)), ""]
    counts = "; ".join(f"at {r} ms {verdict_counts(verdicts, r)}" for r in rates)
    out += [f"Of the paper's findings, {counts} (the table below; the chapter {{doc}}`/book/smaller_faster` gives each rule).", ""]
    out += ["## What this study found", "",
            "Each finding of the paper judged on our own measurements (`09_efficiency/verdicts.csv`), at the "
            "paper's 20 ms frame rate and at 10 ms. Runtime here is CPU time; the paper timed a GPU.", "",
            verdict_table(verdicts, rates), ""]
    out += evidence_by_rate(verdicts, rates)
    out += [caveat_markdown(summary, rates), ""]
    out += ["Runtime against size, every model, as fractions of the dense model (hover for names; filled markers "
            "20 ms, open 10 ms). On the dashed diagonal runtime falls exactly with size; above it a model is slower "
            "than its size promises.", "",
            "```{raw} html", figure_html(runtime_against_size_figure(summary, rates), div_id="findings-figure"),
            "```", ""]
    return "\n".join(out)
