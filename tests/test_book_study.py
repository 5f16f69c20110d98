"""Running the study's notebooks: papermill at the smoke preset, up-to-date runs skipped, missing notebooks
reported (never faked), failures kept apart from committed results; and the notebooks' parameter checks."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import run_study  # noqa: E402
from study_plan import Experiment  # noqa: E402

from compress_lib.errors import CompressLibError  # noqa: E402
from compress_lib.files import project_root  # noqa: E402
from compress_lib.notebook import resolve_parameters  # noqa: E402


@dataclass(frozen=True)
class LocalExperiment(Experiment):
    """An experiment whose notebook lives outside notebooks/ (a test's own)."""

    path: Path = Path("/nonexistent")

    @property
    def source(self) -> Path:
        return self.path


def study_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--preset", "smoke", "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results"),
            "--no-book", "--quiet", *extra]


# -- notebook parameters ----------------------------------------------------------------------------------------
def test_resolve_parameters_defaults_and_paths(tmp_path):
    run = resolve_parameters("09_efficiency", "smoke", 20, 0, "", str(tmp_path / "out"))
    assert run.output_path == tmp_path / "out" and run.output_path.is_dir()
    assert run.data_dir == "work/corpus"  # relative to the project root: results stay machine independent
    assert run.data_path == project_root() / "work" / "corpus"
    assert run.to_dict()["preset"] == "smoke"


@pytest.mark.parametrize(
    "preset, frame_ms, seed, match",
    [("large", 20, 0, "unknown preset 'large'; valid: smoke, lab, study, paper"),
     ("smoke", 15, 0, "frame rate"),
     ("smoke", "20", 0, "frame_ms must be an integer"),
     ("smoke", 20, -1, "seed must be an integer >= 0"),
     ("smoke", 20, 1.5, "seed must be an integer >= 0")],
)
def test_resolve_parameters_rejects_bad_values_clearly(preset, frame_ms, seed, match, tmp_path):
    with pytest.raises(CompressLibError, match=match):
        resolve_parameters("x", preset, frame_ms, seed, "", str(tmp_path))


def test_resolve_parameters_rejects_a_file_as_output_dir(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(CompressLibError, match="not a directory"):
        resolve_parameters("x", "smoke", 20, 0, "", str(tmp_path / "f"))


# -- tools/run_study.py -----------------------------------------------------------------------------------------
def test_a_notebook_missing_from_the_checkout_is_an_error_before_anything_runs(tmp_path, monkeypatch, capsys):
    ghost = Experiment("98_ghost", "efficiency", "a notebook nobody wrote")
    monkeypatch.setattr(run_study, "EXPERIMENTS", (ghost,))
    with pytest.raises(SystemExit) as exc:
        run_study.main(study_args(tmp_path, "--only", "98_ghost"))
    assert exc.value.code == 2
    assert "notebooks/98_ghost.md missing from this checkout" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_unknown_notebook_name_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run_study.main(study_args(tmp_path, "--only", "99_nope"))
    assert exc.value.code == 2
    assert "unknown notebook(s) 99_nope" in capsys.readouterr().err


def test_run_times_table_lists_each_notebook_and_the_total(tmp_path):
    for day, stem, seconds, threads in ((1, "01_a", 12.5, None), (2, "02_b", 100.0, 2)):
        params = {"preset": "smoke"} if threads is None else {"preset": "smoke", "threads": threads}
        (tmp_path / f"{stem}.run.json").write_text(json.dumps(
            {"parameters": params, "duration_s": seconds, "finished_utc": f"2026-01-0{day}T00:00:00Z"}))
    assert run_study.write_run_times(tmp_path / "empty") is None
    rows = list(csv.DictReader(run_study.write_run_times(tmp_path).open()))
    assert [r["notebook"] for r in rows] == ["01_a", "02_b", "total"]
    assert [float(r["duration_s"]) for r in rows] == [12.5, 100.0, 112.5]
    assert rows[1]["threads"] == "2" and rows[0]["threads"] == ""
    assert rows[2]["finished_utc"] == "2026-01-02T00:00:00Z"


def test_a_study_run_in_parts_sums_the_parts_of_each_notebook(tmp_path):
    first = {"parameters": {"preset": "study", "frame_rates": "20"}, "duration_s": 700.0, "finished_utc": "a"}
    both = {"preset": "study", "frame_rates": "10,20", "threads": 1}  # threads change speed, not the work
    parts = run_study.earlier_parts(first, both, force=False)
    assert [(p["frame_rates"], p["duration_s"]) for p in parts] == [("20", 700.0)]
    assert run_study.earlier_parts(first, both, force=True) == []  # --force: a run from scratch
    assert run_study.earlier_parts(first, {"preset": "study", "frame_rates": "20"}, force=False) == []  # a rerun
    assert run_study.earlier_parts(first, {"preset": "study", "frame_rates": "10,20", "seed": 1}, False) == []
    assert run_study.earlier_parts(None, both, force=False) == []
    # another rate alone continues too (02's 10 ms part beside its 20 ms one), but not a notebook edited since
    ten = {"preset": "study", "frame_rates": "10"}
    assert run_study.earlier_parts({**first, "source_sha256": "s"}, ten, False, "s") == parts
    assert run_study.earlier_parts({**first, "source_sha256": "s"}, ten, False, "edited") == []
    record = {"parameters": both, "duration_s": 1700.0, "finished_utc": "b",
              "parts": parts + [{"frame_rates": "10,20", "threads": 1, "duration_s": 1000.0, "finished_utc": "b"}]}
    (tmp_path / "02_b.run.json").write_text(json.dumps(record))
    row = next(csv.DictReader(run_study.write_run_times(tmp_path).open()))
    assert float(row["duration_s"]) == 1700.0
    assert row["parts"] == "20 ms: 700.0 s; 10,20 ms, 1 thread: 1000.0 s"


def test_threads_alone_do_not_make_a_notebook_out_of_date(tmp_path):
    exp = Experiment("01_x", "c", "w")
    exp.executed("study", tmp_path).parent.mkdir(parents=True)
    exp.executed("study", tmp_path).write_text("{}")
    params = {"preset": "study", "frame_rates": "10,20"}
    run_study.record_path(exp, "study", tmp_path).write_text(json.dumps(
        {"source_sha256": "h", "parameters": {**params, "threads": 1}}))
    assert run_study.up_to_date(exp, "study", tmp_path, "h", params)
    assert not run_study.up_to_date(exp, "study", tmp_path, "other source", params)
    assert not run_study.up_to_date(exp, "study", tmp_path, "h", {**params, "frame_rates": "20"})


def notebook(*cells: tuple[str, str, list[str]]) -> dict:
    """A minimal .ipynb dict of (cell type, source, tags) cells."""
    return {"cells": [{"cell_type": kind, "metadata": {"tags": tags}, "source": source,
                       **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                      for kind, source, tags in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_prose_and_tag_changes_refresh_the_page_and_keep_the_outputs(tmp_path):
    """A notebook whose code is unchanged is not rerun: its page takes the new prose and tags, keeps its outputs
    and the injected parameters (collapsed); changed code or parameters mean a rerun."""
    exp = Experiment("01_x", "c", "w")
    executed = notebook(("markdown", "old prose", []), ("code", "preset = 'smoke'", ["parameters"]),
                        ("code", "preset = 'study'", ["injected-parameters"]), ("code", "print(1)", []))
    executed["cells"][3]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    exp.executed("study", tmp_path).parent.mkdir(parents=True)
    exp.executed("study", tmp_path).write_text(json.dumps(executed))
    params = {"preset": "study"}
    run_study.record_path(exp, "study", tmp_path).write_text(json.dumps({"source_sha256": "old", "parameters": params}))
    source = tmp_path / "source.ipynb"
    source.write_text(json.dumps(notebook(("markdown", "new prose", []),
                                          ("code", "preset = 'smoke'", ["parameters", "hide-cell"]),
                                          ("code", "print(1)", ["hide-input"]))))
    assert run_study.same_work(exp, "study", tmp_path, source, params)
    assert not run_study.same_work(exp, "study", tmp_path, source, {"preset": "smoke"})
    run_study.refresh_presentation(exp, "study", tmp_path, source, "new")
    page = json.loads(exp.executed("study", tmp_path).read_text())
    assert [("".join(c["source"]), c["metadata"]["tags"]) for c in page["cells"]] == [
        ("new prose", []), ("preset = 'smoke'", ["parameters", "hide-cell"]),
        ("preset = 'study'", ["injected-parameters", "hide-cell"]), ("print(1)", ["hide-input"])]
    assert page["cells"][3]["outputs"] == executed["cells"][3]["outputs"]
    assert json.loads(run_study.record_path(exp, "study", tmp_path).read_text())["source_sha256"] == "new"
    assert run_study.up_to_date(exp, "study", tmp_path, "new", params)

    source.write_text(json.dumps(notebook(("code", "preset = 'smoke'", ["parameters"]), ("code", "print(2)", []))))
    assert not run_study.same_work(exp, "study", tmp_path, source, params)
    with pytest.raises(ValueError, match="rerun"):
        run_study.presented(json.loads(source.read_text()), page)


def test_an_experiment_can_pin_its_frame_rates(tmp_path):
    class Args:
        preset, work, results, seed, frame_ms, threads, corpus_scale = "study", tmp_path, tmp_path, None, None, None, 1
        frame_rates, jobs = "10,20", 1

    declared = {"preset", "frame_rates"}
    assert run_study.parameters_for(run_study.whole_job(Experiment("x", "c", "w")), declared, Args)["frame_rates"] \
        == "10,20"
    pinned = run_study.whole_job(Experiment("x", "c", "w", frame_rates="20"))  # the combined recipe: 20 ms only
    assert run_study.parameters_for(pinned, declared, Args)["frame_rates"] == "20"
    Args.preset = "smoke"  # tests the pipeline: every rate
    assert run_study.parameters_for(pinned, declared, Args)["frame_rates"] == "10,20"


@pytest.mark.slow
def test_smoke_run_of_the_smaller_faster_notebook_then_skipped_when_up_to_date(tmp_path, capsys):
    """11_smaller_faster divides every cost by the dense model's, ranks size against runtime and collects the
    verdicts; an unchanged rerun is skipped; with no table it says so and writes no numbers."""
    results = tmp_path / "results" / "smoke"
    rows = [  # model, method, density, MACs per second, non-zero parameters, real-time factor, PER
        ("dense", "dense", 1.0, 100, 1000, 0.10, 30.0),
        ("heads-0.5", "heads", 0.5, 80, 800, 0.06, 31.0),
        ("ffn-0.5", "ffn", 0.5, 60, 600, 0.08, 32.0),
        ("distill-0.5", "distill", 0.5, 50, 500, 0.05, 33.0),
        ("weight-0.3", "weight", 0.3, 30, 300, 0.10, 34.0),
    ]
    results.mkdir(parents=True)
    with open(results / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "method", "density", "frame_ms", "params", "nonzero_params", "macs_per_second",
                         "real_time_factor", "per", "sid_accuracy", "pretrain_loss"])
        for model, method, density, macs, params, rtf, per in rows:
            writer.writerow([model, method, density, 20, params, params, macs, rtf, per, "", ""])
    (results / "09_efficiency").mkdir()
    (results / "09_efficiency" / "verdicts.csv").write_text(
        "frame_ms,id,finding,paper,ours,verdict\n20,f,heads faster,cited,measured,reproduced\n")
    args = study_args(tmp_path, "--only", "11_smaller_faster")
    assert run_study.main(args) == 0
    out, executed = results / "11_smaller_faster", results / "11_smaller_faster.ipynb"
    record = json.loads(executed.with_suffix(".run.json").read_text())
    assert record["parameters"]["preset"] == "smoke" and record["parameters"]["output_dir"] == str(out)
    nb = json.loads(executed.read_text())
    assert any("parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    sparsest = {r["method"]: r for r in csv.DictReader(open(out / "sparsest.csv"))}
    assert float(sparsest["heads"]["rtf_fraction"]) == pytest.approx(0.6)
    assert float(sparsest["heads"]["time saved per MAC saved"]) == pytest.approx(0.4 / 0.2)
    assert float(sparsest["weight"]["time saved per MAC saved"]) == pytest.approx(0.0)  # masks save no time
    summary = json.loads((out / "summary.json").read_text())
    (answer,) = summary["answers"]
    assert answer["macs_rank_correlation"] == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    assert answer["fastest"] == "distill-0.5" and answer["fewest_macs"] == "distill-0.5"
    assert answer["weight_model"] == "weight-0.3" and answer["weight_rtf_fraction"] == pytest.approx(1.0)
    assert summary["verdict_counts"] == {"reproduced": 1}
    mtime = executed.stat().st_mtime_ns
    capsys.readouterr()
    assert run_study.main(args) == 0
    assert "11_smaller_faster    up to date" in capsys.readouterr().out
    assert executed.stat().st_mtime_ns == mtime

    (results / "summary.csv").unlink()  # no table: nothing compared, no file of an earlier run left standing
    assert run_study.main(study_args(tmp_path, "--only", "11_smaller_faster", "--force")) == 0
    assert not (out / "sparsest.csv").exists()
    assert json.loads((out / "summary.json").read_text())["answers"] == []


NOTEBOOK_HEADER = """\
---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---
"""

FAILING_NOTEBOOK = NOTEBOOK_HEADER + """
```{code-cell} ipython3
:tags: [parameters]

preset = "smoke"  # scale
output_dir = ""  # results
```

```{code-cell} ipython3
from compress_lib.notebook import resolve_parameters
resolve_parameters("97_bad", "huge", 20, 0, "", output_dir)
```
"""


@pytest.mark.slow
def test_failed_notebook_leaves_earlier_results_alone(tmp_path, monkeypatch, capsys):
    source = tmp_path / "97_bad.md"
    source.write_text(FAILING_NOTEBOOK)
    bad = LocalExperiment("97_bad", "efficiency", "raises a user error", path=source)
    monkeypatch.setattr(run_study, "EXPERIMENTS", (bad,))
    earlier = tmp_path / "results" / "smoke" / "97_bad.ipynb"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("earlier result")

    assert run_study.main(study_args(tmp_path, "--only", "97_bad")) == 1
    err = capsys.readouterr().err
    assert "97_bad: FAILED in cell" in err and "unknown preset 'huge'" in err
    assert earlier.read_text() == "earlier result"
    assert (tmp_path / "work" / "smoke" / "failed" / "97_bad.ipynb").is_file()


@pytest.mark.slow
def test_smoke_run_of_corpus_and_pretrain_notebooks_then_skipped(tmp_path, capsys):
    """01_corpus generates the smoke corpus where the runner points, 02_pretrain trains both frame rates on it."""
    args = study_args(tmp_path, "--only", "01_corpus", "02_pretrain")
    assert run_study.main(args) == 0
    results = tmp_path / "results" / "smoke"
    corpus = json.loads((results / "01_corpus" / "summary.json").read_text())
    assert corpus["parameters"]["data_dir"] == str(tmp_path / "work" / "corpus-0.02")
    assert corpus["splits"]["pretrain"]["utterances"] > 0 and corpus["trivial_sid_baseline"]["speakers"] >= 4
    assert (tmp_path / "work" / "corpus-0.02" / "pretrain.jsonl").is_file()
    pretrain = json.loads((results / "02_pretrain" / "summary.json").read_text())
    assert sorted(pretrain["checkpoints"]) == ["10", "20"]
    for rate, path in pretrain["checkpoints"].items():
        assert Path(path) == tmp_path / "work" / "smoke" / f"pretrain-{rate}ms" / "model.pt" and Path(path).is_file()
        assert (results / "02_pretrain" / f"pretrain-{rate}ms-stage2.csv").is_file()
    assert pretrain["models"]["20"]["parameters"] > pretrain["models"]["10"]["parameters"] > 0  # 80- vs 40-dim input
    assert not list(results.rglob("*.pt")), "checkpoints belong in the work folder, not with the results"
    capsys.readouterr()

    assert run_study.main(args) == 0
    out = capsys.readouterr().out
    assert "01_corpus            up to date" in out and "02_pretrain          up to date" in out


@pytest.mark.slow
def test_pretrain_notebook_rejects_a_bad_frame_rate_clearly(tmp_path):
    import jupytext
    import papermill

    ipynb = tmp_path / "02_pretrain.ipynb"
    jupytext.write(jupytext.read(ROOT / "notebooks" / "02_pretrain.md"), ipynb, fmt="ipynb")
    with pytest.raises(papermill.PapermillExecutionError, match="frame_rates must list frame rates in ms from 10, 20"):
        papermill.execute_notebook(
            str(ipynb), str(tmp_path / "out.ipynb"), kernel_name="python3", cwd=str(ROOT), progress_bar=False,
            parameters=dict(preset="smoke", frame_rates="10,15", data_dir=str(tmp_path / "corpus"),
                            work_dir=str(tmp_path / "work"), output_dir=str(tmp_path / "out")),
        )
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
def test_smoke_run_of_the_prior_work_notebook(tmp_path):
    """10_prior_work measures every zoo model and MelHuBERT; cited PERs stay labelled; a bad `models` is refused."""
    import jupytext
    import papermill

    from compress_lib.zoo import PUBLISHED_RESULTS

    assert run_study.main(study_args(tmp_path, "--only", "10_prior_work")) == 0
    out = tmp_path / "results" / "smoke" / "10_prior_work"
    table = {row["model"]: row for row in csv.DictReader((out / "prior_work.csv").open())}
    assert set(PUBLISHED_RESULTS) < set(table) and "MelHuBERT-20ms first-6 (paper size)" in table
    for name, cited in PUBLISHED_RESULTS.items():
        row = table[name]
        assert float(row["published_per"]) == cited["per"] and "cited" in row["results_source"]
        assert int(row["macs_per_second"]) == int(row["closed_form_macs_per_second"]) > 0
        assert float(row["real_time_factor"]) > 0 and int(row["operator_calls"]) > 0
    assert 0.6 < float(table["lighthubert-small"]["cnn_mac_share"]) < 0.75
    assert table["MelHuBERT-20ms (paper size)"]["published_per"] == ""  # no PER is ever made up for MelHuBERT
    summary = json.loads((out / "summary.json").read_text())
    assert summary["downstream_results"] is None  # no 08_downstream results in this fresh folder

    ipynb = tmp_path / "10_prior_work.ipynb"
    jupytext.write(jupytext.read(ROOT / "notebooks" / "10_prior_work.md"), ipynb, fmt="ipynb")
    with pytest.raises(papermill.PapermillExecutionError, match="models must be 'all' or a comma-separated list"):
        papermill.execute_notebook(str(ipynb), str(tmp_path / "bad.ipynb"), kernel_name="python3", cwd=str(ROOT),
                                   progress_bar=False, parameters=dict(preset="smoke", models="hubert-base,wavlm",
                                                                       output_dir=str(tmp_path / "bad")))


def test_unknown_injected_parameters_are_found_in_the_kernel_history():
    from compress_lib.notebook import unknown_injected_parameters

    history = ["", "import x", 'preset = "smoke"  # scale\nseed: int = 0\n',
               '# Parameters\npreset = "study"\nfinetune_steps = 50\n', "run = 1"]
    assert unknown_injected_parameters(history) == (["finetune_steps"], ["preset", "seed"])
    assert unknown_injected_parameters(history[:3]) == ([], [])  # plain Jupyter: nothing injected


@pytest.mark.slow
def test_papermill_run_with_an_unknown_parameter_fails_naming_the_valid_ones(tmp_path):
    """papermill only warns about a parameter the notebook lacks; the notebook itself refuses it."""
    import jupytext
    import papermill

    ipynb = tmp_path / "11.ipynb"
    jupytext.write(jupytext.read(ROOT / "notebooks" / "11_smaller_faster.md"), ipynb, fmt="ipynb")
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        papermill.execute_notebook(str(ipynb), str(tmp_path / "out.ipynb"), kernel_name="python3", cwd=str(ROOT),
                                   progress_bar=False, parameters={"preset": "smoke", "finetune_steps": 50,
                                                                   "output_dir": str(tmp_path / "out")})
    assert "has no parameter 'finetune_steps'" in str(failure.value) and "summary_csv" in str(failure.value)


@pytest.mark.slow
def test_a_settings_parameter_changes_the_recorded_settings_and_the_result(tmp_path, smoke_corpus):
    """`-p settings '...'` reaches the method's settings: the FFN trajectory removes half the width per step in
    its own folder (the preset's trajectory would take two steps to the same end)."""
    import jupytext
    import pandas as pd
    import papermill

    ipynb = tmp_path / "05.ipynb"
    jupytext.write(jupytext.read(ROOT / "notebooks" / "05_lowrank.md"), ipynb, fmt="ipynb")
    common = dict(preset="smoke", frame_rates="20", data_dir=str(smoke_corpus), work_dir=str(tmp_path / "work"))
    tables = {}
    for name, settings in (("preset", ""), ("changed", "ffn_units_per_step=0.5,finetune_steps=1")):
        out = tmp_path / name
        papermill.execute_notebook(str(ipynb), str(tmp_path / f"{name}.ipynb"), kernel_name="python3", cwd=str(ROOT),
                                   progress_bar=False, parameters={**common, "settings": settings, "output_dir": str(out)})
        tables[name] = pd.read_csv(out / "ffn.csv")
        record = json.loads((out / "summary.json").read_text())
        tables[name + " folder"] = {Path(c).parts[0] for c in tables[name]["checkpoint"]}
    assert tables["preset folder"] == {"ffn-20ms"}
    assert tables["changed folder"] == {"ffn-20ms-ffn_units_per_step-0.5-finetune_steps-1"}
    assert len(tables["changed"]) < len(tables["preset"])  # fewer, larger steps to the same end
    assert record["settings"]["ffn_units_per_step"] == 0.5 and record["settings"]["finetune_steps"] == 1
    with pytest.raises(papermill.PapermillExecutionError, match="unknown compression setting 'finetune_step'"):
        papermill.execute_notebook(str(ipynb), str(tmp_path / "bad.ipynb"), kernel_name="python3", cwd=str(ROOT),
                                   progress_bar=False, parameters={**common, "settings": "finetune_step=1",
                                                                   "output_dir": str(tmp_path / "bad")})


def test_every_notebook_needs_only_notebooks_planned_before_it():
    from study_plan import EXPERIMENTS

    seen = set()
    for exp in EXPERIMENTS:
        assert set(exp.needs) <= seen, f"{exp.stem} needs {set(exp.needs) - seen}, which run after it"
        seen.add(exp.stem)


def test_jobs_run_notebooks_side_by_side_after_their_inputs_and_timing_ones_alone(tmp_path, monkeypatch):
    """--jobs 2: a notebook starts after the ones it needs, at most two at once, the first one and one marked
    runs_alone with no company; the longest chain of waiting notebooks first, then the plan's order. A fake
    `execute` records what ran beside what and finishes only when the test lets it, so the schedule does not
    depend on timing."""
    import queue
    import threading

    plan = (Experiment("a", "c", "w"), Experiment("b", "c", "w"),
            Experiment("c", "c", "w", needs=("b",)), Experiment("d", "c", "w", needs=("b",)),
            Experiment("e", "c", "w", needs=("b",)), Experiment("t", "c", "w", runs_alone=True),
            Experiment("f", "c", "w", needs=("c", "d")))
    for exp in plan:  # each needs a source file to be run
        monkeypatch.setattr(type(exp), "source", property(lambda self: tmp_path / f"{self.stem}.md"))
        (tmp_path / f"{exp.stem}.md").write_text("")
    lock, running, company, started = threading.Lock(), set(), {}, queue.Queue()
    release = {exp.stem: threading.Event() for exp in plan}

    def fake_execute(job, args, code_sha):
        with lock:
            company[job.name] = set(running)
            running.add(job.name)
        started.put(job.name)
        assert release[job.name].wait(60), f"{job.name} was never released"
        with lock:
            running.discard(job.name)
        return "ran", 1.0

    monkeypatch.setattr(run_study, "execute", fake_execute)

    class Args:
        jobs = 2

    statuses = {}
    jobs = [run_study.whole_job(exp) for exp in plan]
    scheduler = threading.Thread(target=lambda: statuses.update(run_study.run_notebooks(jobs, Args, "sha")))
    scheduler.start()

    def step(finish: str | None, expect: set[str]) -> None:
        """Let `finish` end, then expect exactly `expect` to start (nothing else is running meanwhile)."""
        if finish:
            release[finish].set()
        assert {started.get(timeout=60) for _ in expect} == expect

    step(None, {"b"})  # the longest chain waits on b (c, then f); the first runs alone (it may make the teacher)
    step("b", {"c", "d"})  # f waits on c and d: they go first, two at a time
    step("c", {"a"})  # beside d; then plan order among the rest
    step("d", {"e"})  # beside a
    step("a", set())  # t runs alone: it waits for e
    step("e", {"t"})
    step("t", {"f"})
    release["f"].set()
    scheduler.join(60)
    assert not scheduler.is_alive() and started.empty()
    assert list(statuses) == [e.stem for e in plan] and all(s == ("ran", 1.0) for s in statuses.values())
    side_by_side = {frozenset((x, y)) for x, others in company.items() for y in others}  # c, d start together
    assert side_by_side == {frozenset("cd"), frozenset("ad"), frozenset("ae")}
    assert run_study.waiting_chains(jobs) == {"a": 0, "b": 2, "c": 1, "d": 1, "e": 0, "t": 0, "f": 0}


def test_jobs_pass_one_thread_to_notebooks_that_share_the_machine(tmp_path):
    class Args:
        preset, work, results, seed, frame_ms, frame_rates = "study", tmp_path, tmp_path, None, None, None
        corpus_scale, threads, jobs = 1, None, 2

    declared = {"preset", "threads", "processes"}
    shared = run_study.parameters_for(run_study.whole_job(Experiment("x", "c", "w")), declared, Args)
    assert shared["threads"] == 1 and shared["processes"] == 1
    evaluations = run_study.parameters_for(run_study.whole_job(Experiment("x", "c", "w", fills_free_cores=True)),
                                           declared, Args)
    assert evaluations["threads"] == 1 and evaluations["processes"] == 2  # 08's: one per job slot, one thread each
    alone = run_study.parameters_for(run_study.whole_job(Experiment("x", "c", "w", runs_alone=True)), declared, Args)
    assert "threads" not in alone and "processes" not in alone
    Args.jobs = 1
    assert "threads" not in run_study.parameters_for(run_study.whole_job(Experiment("x", "c", "w")), declared, Args)


def plan_args(**changes) -> SimpleNamespace:
    return SimpleNamespace(**{"preset": "study", "jobs": 2, "frame_rates": "10,20", "split_by_rate": "auto",
                              **changes})


def test_a_split_plan_runs_the_first_rate_of_each_split_notebook_first_and_waits_only_for_that():
    """--jobs 2 at the study preset: 02..06 and 08 run at 20 ms first; a job at 20 ms (07, and 08's first part)
    waits only for the 20 ms parts it reads, the whole notebook for its own first part and everything it reads."""
    from study_plan import EXPERIMENTS

    jobs = {job.name: job for job in run_study.plan_jobs(list(EXPERIMENTS), plan_args())}
    assert [n for n in jobs if "@" in n] == ["02_pretrain@20", "02_pretrain@10", "03_weight_pruning@20",
                                             "04_head_pruning@20", "05_lowrank@20", "06_distillation@20",
                                             "08_downstream@20"]
    # 02 pretrains both teachers from the corpus alone: both rates start at once; the whole notebook merges them
    assert jobs["02_pretrain@10"].needs == () and jobs["02_pretrain@10"].rates == "10"
    assert jobs["02_pretrain"].needs == ("02_pretrain@20", "02_pretrain@10")
    assert jobs["03_weight_pruning@20"].needs == ("02_pretrain@20",) and jobs["03_weight_pruning@20"].rates == "20"
    assert jobs["03_weight_pruning"].needs == ("03_weight_pruning@20", "02_pretrain")
    assert jobs["07_combined"].needs == ("02_pretrain@20", "06_distillation@20")  # 07 runs at 20 ms only
    assert set(jobs["08_downstream@20"].needs) == {"03_weight_pruning@20", "04_head_pruning@20", "05_lowrank@20",
                                                   "06_distillation@20", "07_combined"}
    assert not jobs["02_pretrain"].runs_alone and not jobs["08_downstream@20"].runs_alone  # one thread each
    assert jobs["08_downstream"].runs_alone and jobs["09_efficiency"].needs == ("08_downstream",)
    names = list(jobs)
    assert all(names.index(need) < names.index(name) for name, job in jobs.items() for need in job.needs)
    depth = run_study.waiting_chains(list(jobs.values()))
    assert depth["06_distillation@20"] > depth["02_pretrain"] == depth["03_weight_pruning@20"]  # 07 waits on 06
    # one frame rate, one job at a time, smoke (seconds per notebook) or --split-by-rate no: whole notebooks
    for args in (plan_args(frame_rates="20"), plan_args(jobs=1), plan_args(preset="smoke"),
                 plan_args(split_by_rate="no")):
        assert all("@" not in job.name for job in run_study.plan_jobs(list(EXPERIMENTS), args))
    assert any("@" in job.name for job in run_study.plan_jobs(list(EXPERIMENTS), plan_args(preset="smoke",
                                                                                             split_by_rate="yes")))


def test_the_first_part_of_a_split_notebook_is_up_to_date_once_the_whole_notebook_ran(tmp_path):
    exp = Experiment("x", "c", "w")
    executed = exp.executed("study", tmp_path)
    executed.parent.mkdir(parents=True)
    executed.write_text("{}")
    whole = {"preset": "study", "frame_rates": "10,20", "threads": 1}
    run_study.record_path(exp, "study", tmp_path).write_text(json.dumps(
        {"source_sha256": "s", "parameters": whole}))
    first = {"preset": "study", "frame_rates": "20", "threads": 1, "processes": 1}
    assert run_study.up_to_date(exp, "study", tmp_path, "s", first, first_part=True)
    assert not run_study.up_to_date(exp, "study", tmp_path, "s", first)  # a run at 20 ms only is other work
    assert not run_study.up_to_date(exp, "study", tmp_path, "t", first, first_part=True)  # another source
    assert not run_study.up_to_date(exp, "study", tmp_path, "s", {**first, "seed": 1}, first_part=True)
    assert run_study.up_to_date(exp, "study", tmp_path, "s", {**whole, "processes": 1})  # speed only


def test_run_times_of_a_whole_run_give_its_corpus_step_and_wall_time(tmp_path):
    for stem, seconds, finished in (("01_a", 60.0, "2026-01-01T00:02:00Z"), ("02_b", 100.0, "2026-01-01T00:02:30Z")):
        (tmp_path / f"{stem}.run.json").write_text(json.dumps(
            {"parameters": {"preset": "lab", "threads": 1}, "duration_s": seconds, "finished_utc": finished}))
    args = SimpleNamespace(preset="lab", jobs=2, threads=None)
    started = run_study.parse_utc("2026-01-01T00:00:30Z")
    run_study.record_whole_run(tmp_path, args, started, corpus_s=20.0)
    whole = json.loads((tmp_path / run_study.WHOLE_RUN_FILE).read_text())
    whole["finished_utc"] = "2026-01-01T00:02:40Z"  # as if written right after the last notebook
    whole["wall_s"] = 130.0
    (tmp_path / run_study.WHOLE_RUN_FILE).write_text(json.dumps(whole))
    rows = {r["notebook"]: r for r in csv.DictReader(run_study.write_run_times(tmp_path).open())}
    assert list(rows) == ["corpus", "01_a", "02_b", "total", "wall time"]
    assert rows["01_a"]["start_s"] == "30"  # seconds after the run's start; side by side: 02_b began first
    assert rows["02_b"]["start_s"] == "20" and rows["corpus"]["start_s"] == "0"
    assert float(rows["total"]["duration_s"]) == 160.0 and float(rows["wall time"]["duration_s"]) == 130.0
    assert float(rows["corpus"]["duration_s"]) == 20.0 and "--jobs 2" in rows["wall time"]["parts"]
    # a notebook rerun after the whole run: the table no longer claims one sitting
    (tmp_path / "01_a.run.json").write_text(json.dumps(
        {"parameters": {"preset": "lab"}, "duration_s": 5.0, "finished_utc": "2026-01-02T00:00:00Z"}))
    assert [r["notebook"] for r in csv.DictReader(run_study.write_run_times(tmp_path).open())] == \
        ["01_a", "02_b", "total"]


def write_record(results: Path, stem: str, parts: list[tuple[str, float, str]]) -> None:
    """A run record of notebook `stem` at the study preset: parts as (frame rates, seconds, finished UTC)."""
    (results / "study").mkdir(parents=True, exist_ok=True)
    (results / "study" / f"{stem}.ipynb").write_text("{}")
    last_rates, _, last_finished = parts[-1]
    run_study.record_of(stem, "study", results).write_text(json.dumps({
        "source_sha256": "s", "parameters": {"preset": "study", "frame_rates": last_rates},
        "duration_s": sum(p[1] for p in parts), "finished_utc": last_finished,
        "parts": [{"frame_rates": r, "duration_s": d, "finished_utc": f} for r, d, f in parts]}))


def test_a_notebook_whose_input_ran_since_is_run_again(tmp_path):
    pruning = Experiment("b_pruning", "c", "w", needs=("a_teacher",))
    both = {"preset": "study", "frame_rates": "10,20"}
    # the teacher in two parts (20 ms, then both rates); the pruning notebook's 20 ms part ran between them
    write_record(tmp_path, "a_teacher", [("20", 600.0, "2026-01-01T01:00:00Z"), ("10,20", 1200.0,
                                                                                 "2026-01-01T01:30:00Z")])
    write_record(tmp_path, "b_pruning", [("20", 300.0, "2026-01-01T01:10:00Z"), ("10,20", 400.0,
                                                                                "2026-01-01T01:35:00Z")])
    assert run_study.input_ran_since(pruning, "study", tmp_path, {**both, "frame_rates": "20"}) is None
    assert run_study.input_ran_since(pruning, "study", tmp_path, both) == "a_teacher"  # its last part began 01:28:20
    write_record(tmp_path, "b_pruning", [("20", 300.0, "2026-01-01T01:10:00Z"), ("10,20", 400.0,
                                                                                "2026-01-01T01:37:00Z")])
    assert run_study.input_ran_since(pruning, "study", tmp_path, both) is None  # began 01:30:20, right after it
    assert run_study.up_to_date(pruning, "study", tmp_path, "s", both)
    # the teacher retrained afterwards (`--only a_teacher --force`): every part of the pruning notebook is stale
    write_record(tmp_path, "a_teacher", [("10,20", 1800.0, "2026-01-01T03:00:00Z")])
    assert run_study.input_ran_since(pruning, "study", tmp_path, both) == "a_teacher"
    assert run_study.input_ran_since(pruning, "study", tmp_path, {**both, "frame_rates": "20"}) == "a_teacher"
    # a notebook that reads an input at one rate only (08 reads 07's 20 ms) is judged by that input's run
    write_record(tmp_path, "c_combined", [("20", 60.0, "2026-01-01T03:05:00Z")])
    evaluation = Experiment("d_eval", "c", "w", needs=("c_combined",))
    write_record(tmp_path, "d_eval", [("10,20", 600.0, "2026-01-01T03:20:00Z")])
    assert run_study.input_ran_since(evaluation, "study", tmp_path, both) is None
    write_record(tmp_path, "c_combined", [("20", 60.0, "2026-01-01T04:00:00Z")])
    assert run_study.input_ran_since(evaluation, "study", tmp_path, both) == "c_combined"


TRIVIAL_NOTEBOOK = NOTEBOOK_HEADER + """
```{code-cell} ipython3
:tags: [parameters]

preset = "smoke"  # scale
```
"""


@pytest.mark.slow
def test_a_rerun_input_makes_the_study_run_its_readers_again(tmp_path, monkeypatch, capsys):
    plan = []
    for stem, needs in (("95_input", ()), ("96_reader", ("95_input",))):
        (tmp_path / f"{stem}.md").write_text(TRIVIAL_NOTEBOOK)
        plan.append(LocalExperiment(stem, "efficiency", "trivial", needs=needs, path=tmp_path / f"{stem}.md"))
    monkeypatch.setattr(run_study, "EXPERIMENTS", tuple(plan))
    both = ["--only", "95_input", "96_reader"]
    assert run_study.main(study_args(tmp_path, *both)) == 0
    capsys.readouterr()
    assert run_study.main(study_args(tmp_path, *both)) == 0
    assert "96_reader            up to date" in capsys.readouterr().out

    for stem in ("95_input", "96_reader"):  # as if that run were an hour old (records keep whole seconds)
        record = run_study.record_of(stem, "smoke", tmp_path / "results")
        saved = json.loads(record.read_text())
        for part in [saved, *saved["parts"]]:
            part["finished_utc"] = run_study.utc_text(run_study.parse_utc(part["finished_utc"]) - 3600)
        record.write_text(json.dumps(saved))
    assert run_study.main(study_args(tmp_path, "--only", "95_input", "--force")) == 0
    assert run_study.main(study_args(tmp_path, *both)) == 0
    out = capsys.readouterr().out
    assert "96_reader: 95_input ran since this notebook last ran: running it again" in out
    assert "95_input             up to date" in out and "96_reader            ran" in out


def test_the_rates_of_a_notebook_that_reads_no_other_start_side_by_side(tmp_path, monkeypatch):
    """--jobs 2, rates_at_once (02): both rates' parts start at once, beside each other although the first job
    otherwise runs alone; the 20 ms part of a notebook reading it starts when the 20 ms part ends; the whole
    notebook (the merge) once both parts are done."""
    import queue
    import threading

    plan = [Experiment("p", "c", "w", split_by_rate=True, rates_at_once=True),
            Experiment("q", "c", "w", needs=("p",), split_by_rate=True)]
    for exp in plan:
        monkeypatch.setattr(type(exp), "source", property(lambda self: tmp_path / f"{self.stem}.md"))
    jobs = run_study.plan_jobs(plan, plan_args())
    assert [j.name for j in jobs] == ["p@20", "p@10", "p", "q@20", "q"]
    started, release = queue.Queue(), {j.name: threading.Event() for j in jobs}

    def fake_execute(job, args, code_sha):
        started.put(job.name)
        assert release[job.name].wait(60), f"{job.name} was never released"
        return "ran", 1.0

    monkeypatch.setattr(run_study, "execute", fake_execute)
    scheduler = threading.Thread(target=lambda: run_study.run_notebooks(jobs, plan_args(), "sha"))
    scheduler.start()
    assert {started.get(timeout=60), started.get(timeout=60)} == {"p@20", "p@10"}
    release["p@20"].set()
    assert started.get(timeout=60) == "q@20"
    release["p@10"].set()
    assert started.get(timeout=60) == "p"
    for name in ("q@20", "p", "q"):
        release[name].set()
    scheduler.join(60)
    assert not scheduler.is_alive()


def test_a_part_is_up_to_date_when_any_part_of_the_record_ran_its_rates(tmp_path):
    exp = Experiment("p", "c", "w")
    write_record(tmp_path, "p", [("20", 600.0, "2026-01-01T01:00:00Z"), ("10", 1200.0, "2026-01-01T01:20:00Z")])
    for rates in ("20", "10"):
        assert run_study.up_to_date(exp, "study", tmp_path, "s", {"preset": "study", "frame_rates": rates},
                                    first_part=True)
    assert not run_study.up_to_date(exp, "study", tmp_path, "s", {"preset": "study", "frame_rates": "10,20"})
