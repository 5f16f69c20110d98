"""The lab's check cells: right answers pass, wrong ones fail with a hint, unanswered ones let the notebook run."""

import pytest

from compress_lib import teaching


def test_check_number(capsys):
    teaching.check_number("X", 1.02, 1.0, tolerance=0.05)
    assert "Exercise X: right" in capsys.readouterr().out
    with pytest.raises(teaching.WrongAnswer, match="not within 5%.*Read it again"):
        teaching.check_number("X", 1.2, 1.0, tolerance=0.05, hint="Read it again.")
    with pytest.raises(teaching.WrongAnswer, match="give a number"):
        teaching.check_number("X", "1.0", 1.0)
    teaching.check_number("X", None, 1.0)
    assert "not answered yet" in capsys.readouterr().out


def test_check_option():
    teaching.check_option("A", "dense", "dense", ("macs", "dense"))
    teaching.check_option("C", "ffn", ["ffn", "heads"], ("heads", "ffn"))  # too close to call: both count
    with pytest.raises(teaching.WrongAnswer, match="does not match"):
        teaching.check_option("A", "macs", "dense", ("macs", "dense"))
    with pytest.raises(teaching.WrongAnswer, match="answer one of 'macs', 'dense'"):
        teaching.check_option("A", "fast", "dense", ("macs", "dense"))


def test_check_function():
    cases = [((2, 3), 6), ((4, 5), 20)]
    teaching.check_function("B", lambda a, b: a * b, cases)
    with pytest.raises(teaching.WrongAnswer, match=r"for \(4, 5\) your function gives 9"):
        teaching.check_function("B", lambda a, b: a * b if a == 2 else a + b, cases)
    with pytest.raises(teaching.WrongAnswer, match="give a function"):
        teaching.check_function("B", 42, cases)


def test_faster_option_calls_a_tie_within_the_margin():
    assert teaching.faster_option({"heads": [1.0, 1.1, 1.0], "ffn": [2.0, 2.0, 2.1]}) == ["heads"]
    assert teaching.faster_option({"heads": [1.0], "ffn": [1.02]}, margin=0.03) == ["ffn", "heads"]


@pytest.mark.slow
def test_the_lab_notebook_passes_its_checks_with_the_solutions_and_stops_at_a_wrong_answer(tmp_path):
    import json
    from pathlib import Path

    import jupytext
    import papermill

    root = Path(__file__).resolve().parents[1]
    notebook = jupytext.read(root / "notebooks" / "13_lab.md")
    ipynb = tmp_path / "13_lab.ipynb"
    jupytext.write(notebook, ipynb, fmt="ipynb")
    papermill.execute_notebook(str(ipynb), str(tmp_path / "solved.ipynb"), kernel_name="python3", cwd=str(root),
                               progress_bar=False, parameters={"preset": "smoke", "output_dir": str(tmp_path / "out")})
    texts = [o.get("text", "") for c in json.loads((tmp_path / "solved.ipynb").read_text())["cells"]
             for o in c.get("outputs", [])]
    outputs = "".join("".join(t) if isinstance(t, list) else t for t in texts)  # a stream's text: str or lines
    for exercise in ("A1", "A2", "B1", "B2", "C", "D1", "D2", "D3"):
        assert f"Exercise {exercise}: right" in outputs, exercise
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["parameters"]["preset"] == "smoke"

    for cell in notebook.cells:  # a student's wrong answer to B2: the check cell stops the run with a hint
        if cell.source.startswith("answer_b2 = None"):
            cell.source = "answer_b2 = 0.001"
    jupytext.write(notebook, ipynb, fmt="ipynb")
    with pytest.raises(papermill.PapermillExecutionError, match="Exercise B2: 0.001 is not within 5%"):
        papermill.execute_notebook(str(ipynb), str(tmp_path / "wrong.ipynb"), kernel_name="python3", cwd=str(root),
                                   progress_bar=False, parameters={"preset": "smoke", "solutions": False,
                                                                   "output_dir": str(tmp_path / "wrong")})
