"""nbval (lax) re-runs committed executed notebooks of the study and re-checks their deterministic cells.

Only notebooks that need no training are re-run (retraining would take hours): in them, the cells marked
`# NBVAL_CHECK_OUTPUT` (parameter counts, MAC counts) must print exactly what the committed run printed; every
other cell (timings, figures) is executed but not compared, as `--nbval-lax` does. The copy writes its results to
a temporary folder, never over the committed ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from study_plan import PUBLISHED_PRESET, experiment  # noqa: E402

RERUNNABLE = ("09_efficiency",)  # committed notebooks cheap enough to execute again (no training)


def redirected_copy(executed: Path, tmp_path: Path) -> tuple[Path, int]:
    """A copy of the executed notebook whose outputs go under tmp_path; and how many cells nbval will compare."""
    notebook = json.loads(executed.read_text())
    checked = 0
    for cell in notebook["cells"]:
        source = "".join(cell.get("source", ""))
        if cell["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in source:
            checked += 1
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["source"] = source + (f'\noutput_dir = "{tmp_path / "out"}"\n'
                                       f'summary_csv = "{tmp_path / "summary.csv"}"\n')
    copy = tmp_path / executed.name
    copy.write_text(json.dumps(notebook))
    return copy, checked


@pytest.mark.slow
@pytest.mark.parametrize("stem", RERUNNABLE)
def test_committed_notebook_reproduces_its_deterministic_cells(stem, tmp_path):
    executed = experiment(stem).executed(PUBLISHED_PRESET)
    assert executed.is_file(), f"{executed} is not committed; run `make study` (tools/run_study.py --only {stem})"
    copy, checked = redirected_copy(executed, tmp_path)
    assert checked >= 1, f"{stem} marks no cell `# NBVAL_CHECK_OUTPUT`: nothing would be re-checked"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", str(copy), "-q", "-p", "no:cacheprovider",
         "--nbval-cell-timeout", "900"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
