"""Running the study's notebooks: papermill at the smoke preset, up-to-date runs skipped, missing notebooks
reported (never faked), failures kept apart from committed results; and the notebooks' parameter checks."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import run_study  # noqa: E402
from study_plan import Experiment  # noqa: E402

from compress_lib.errors import CompressLibError  # noqa: E402
from compress_lib.notebook import project_root, resolve_parameters  # noqa: E402


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
    [("large", 20, 0, "unknown preset 'large'; valid: smoke, study, paper"),
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
def test_missing_notebook_is_reported_and_the_run_fails(tmp_path, monkeypatch, capsys):
    ghost = Experiment("98_ghost", "efficiency", "a notebook nobody wrote yet")
    monkeypatch.setattr(run_study, "EXPERIMENTS", (ghost,))
    assert run_study.main(study_args(tmp_path, "--only", "98_ghost")) == 1
    out = capsys.readouterr().out
    assert "98_ghost: missing (notebooks/98_ghost.md does not exist yet" in out
    assert "not yet part of the study (no result is shown for them): 98_ghost" in out
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.ipynb"))


def test_unknown_notebook_name_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run_study.main(study_args(tmp_path, "--only", "99_nope"))
    assert exc.value.code == 2
    assert "unknown notebook(s) 99_nope" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_of_a_notebook_then_skipped_when_up_to_date(tmp_path, capsys):
    args = study_args(tmp_path, "--only", "09_efficiency")
    assert run_study.main(args) == 0
    executed = tmp_path / "results" / "smoke" / "09_efficiency.ipynb"
    record = json.loads(executed.with_suffix(".run.json").read_text())
    assert record["parameters"]["preset"] == "smoke"
    assert record["parameters"]["output_dir"] == str(tmp_path / "results" / "smoke" / "09_efficiency")
    summary = json.loads((tmp_path / "results" / "smoke" / "09_efficiency" / "summary.json").read_text())
    assert summary["parameters"]["preset"] == "smoke"
    assert summary["paper_size_matches_released_checkpoint"] is True
    nb = json.loads(executed.read_text())
    assert any("parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    mtime = executed.stat().st_mtime_ns
    capsys.readouterr()

    assert run_study.main(args) == 0
    assert "09_efficiency        up to date" in capsys.readouterr().out
    assert executed.stat().st_mtime_ns == mtime


FAILING_NOTEBOOK = """\
---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---

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
