"""Build the book (jupyter-book 1.x) from the committed, executed notebooks, with warnings as errors.

    python tools/build_book.py                  # the published book: data/results/study/ -> book/_build/html
    python tools/build_book.py --preset smoke   # from data/results/smoke/ -> book/_build/smoke/_build/html

No code runs at build time (`execute_notebooks: off`): pages come from the notebooks that tools/run_study.py
executed, so a build takes seconds to a minute and needs no training. Before building, plotly.min.js is copied
from the installed plotly wheel into book/_static/ (once for the whole book; it is not committed), and so is
the part of MathJax 2 the equations need, from Debian's libjs-mathjax into book/_static/mathjax/: the book
needs no network. A copy of _toc.yml points at data/results/<preset>/ and leaves out the results that preset
has not produced yet (each one is named; its chapter says the results are pending). The
build runs `jupyter-book build -W -n --keep-going --all`, so any warning (a missing page, a dropped figure, a
broken reference) fails it. Exit status: that of jupyter-book.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_plan import PUBLISHED_PRESET, ROOT  # noqa: E402

STATIC_DIR = ROOT / "book" / "_static"
from compress_lib.presets import PRESET_NAMES as PRESETS  # noqa: E402


def plotly_js_source() -> Path:
    """plotly.min.js from the installed plotly wheel's package data."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing; reinstall plotly (make install)")
    return path


def ship_plotly_js(static_dir: Path = STATIC_DIR) -> Path:
    """Copy plotly.min.js into the book's static folder unless an identical copy is there."""
    src = plotly_js_source()
    dst = static_dir / "plotly.min.js"
    static_dir.mkdir(parents=True, exist_ok=True)
    if not dst.is_file() or dst.stat().st_size != src.stat().st_size or dst.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dst)
    return dst


MATHJAX_SOURCE = Path("/usr/share/javascript/mathjax")  # MathJax 2.7 from Debian's libjs-mathjax and fonts-mathjax
MATHJAX_CONFIG = "TeX-AMS_CHTML"  # the combined configuration _config.yml's mathjax_path names
# What that configuration loads, up front or on demand (TeX extensions such as \boldsymbol, operator tables,
# the right-click menu, CommonHTML's table / multiline code and its web fonts); the rest of MathJax (other
# outputs, MathML and AsciiMath input, otf / svg / STIX fonts, 2 MB of translations) is never requested.
MATHJAX_FILES = (
    "MathJax.js",
    f"config/{MATHJAX_CONFIG}.js",
    "jax/input/TeX/*.js",
    "jax/element/mml/*.js",
    "jax/element/mml/optable/*.js",
    "jax/output/CommonHTML/*.js",
    "jax/output/CommonHTML/autoload/*.js",
    "jax/output/CommonHTML/fonts/TeX/*.js",
    "extensions/*.js",
    "extensions/TeX/*.js",
    "fonts/HTML-CSS/TeX/woff/*.woff",
)


def mathjax_subset(source: Path = MATHJAX_SOURCE) -> list[Path]:
    """The MathJax files the book needs (MATHJAX_FILES), as paths relative to `source`."""
    files = sorted({path.relative_to(source) for pattern in MATHJAX_FILES for path in source.glob(pattern)})
    required = [Path("MathJax.js"), Path("config") / f"{MATHJAX_CONFIG}.js",
                Path("fonts/HTML-CSS/TeX/woff/MathJax_Main-Regular.woff")]
    missing = [str(path) for path in required if path not in files]
    if missing:
        raise SystemExit(f"error: MathJax 2 is missing from {source} ({missing[0]}); install Debian's "
                         "libjs-mathjax and fonts-mathjax (make install)")
    return files


def ship_mathjax(static_dir: Path = STATIC_DIR, source: Path = MATHJAX_SOURCE) -> Path:
    """Copy the MathJax subset the book uses into static_dir/mathjax/ (only files that changed; files no longer
    in the subset are removed), so equations render offline. Returns the folder's MathJax.js."""
    target = static_dir / "mathjax"
    wanted = mathjax_subset(source)
    for rel in wanted:
        src, dst = source / rel, target / rel
        src_stat = src.stat()
        if dst.is_file() and dst.stat().st_size == src_stat.st_size and dst.stat().st_mtime == src_stat.st_mtime:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    wanted_set = set(wanted)
    for path in sorted(target.rglob("*"), reverse=True):  # children before their folders
        rel = path.relative_to(target)
        if path.is_file() and rel not in wanted_set:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return target / "MathJax.js"


GENERATED_DIR = ROOT / "book" / "_generated"  # pages' parts written at build time from the results (git-ignored)


def write_findings(preset: str, results_root: Path = ROOT / "data" / "results", out_dir: Path = GENERATED_DIR) -> Path:
    """book/_generated/findings.md: the study's answer and its findings, computed from the preset's committed
    summary.csv and verdicts.csv (compress_lib.findings); the intro includes it, so the text follows the results.
    Beside it, caveat.md: the warning on the quality verdicts, which the title chapter repeats, and
    deployment_findings.md: notebook 14's verdicts, which the deployment chapter includes."""
    import pandas as pd

    from compress_lib.findings import caveat_markdown, deployment_findings_markdown, findings_markdown
    from compress_lib.results import read_summary, summary_frame

    results = results_root / preset
    summary_file, verdicts_file = results / "summary.csv", results / "09_efficiency" / "verdicts.csv"
    summary = summary_frame(read_summary(summary_file)) if summary_file.is_file() else pd.DataFrame()
    verdicts = pd.read_csv(verdicts_file) if verdicts_file.is_file() else None
    crossover_file = results / "12_runtime_anatomy" / "crossover.csv"
    crossover = pd.read_csv(crossover_file) if crossover_file.is_file() else None
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "findings.md"
    deployment_file = results / "14_deployment" / "verdicts.csv"
    deployment = pd.read_csv(deployment_file) if deployment_file.is_file() else None
    texts = {out: findings_markdown(summary, verdicts, source=f"data/results/{preset}", crossover=crossover),
             out_dir / "caveat.md": caveat_markdown(summary) if len(summary) else "",
             out_dir / "deployment_findings.md": deployment_findings_markdown(deployment,
                                                                              source=f"data/results/{preset}")}
    for path, text in texts.items():
        write_if_changed(path, text)
    return out


def write_if_changed(path: Path, text: str) -> None:
    """Write `text` to `path` unless it already holds it: Sphinx then rebuilds only the pages that include it."""
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


RUN_TIME_PRESETS = ("study", "lab")  # whose run_times.csv the book's pages show
BOOK_RUN_TIME_COLUMNS = ("notebook", "frame_rates", "threads", "start_s", "duration_s", "parts")  # not finished_utc


def write_run_times(results_root: Path = ROOT / "data" / "results", out_dir: Path = GENERATED_DIR) -> list[Path]:
    """book/_generated/run_times_<preset>.csv for the study and lab presets: their committed run_times.csv without
    the `finished_utc` column (a long unbreakable date that widens the table past the page at 1280 px); the
    appendix and the Start-here page include them. A preset that has not run gets a one-row note."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for preset in RUN_TIME_PRESETS:
        table = read_run_times(results_root / preset)
        if table.empty:
            table = pd.DataFrame({"notebook": [f"not run yet: make study PRESET={preset}"]})
        text = table.reindex(columns=list(BOOK_RUN_TIME_COLUMNS)).astype(object).fillna("").to_csv(index=False)
        out = out_dir / f"run_times_{preset}.csv"
        write_if_changed(out, text)
        written.append(out)
    return written


def read_run_times(preset_results: Path):
    """A preset's committed run_times.csv as strings (an empty table with a `notebook` column if it has none)."""
    import pandas as pd

    source = preset_results / "run_times.csv"
    return (pd.read_csv(source, dtype=str, keep_default_na=False) if source.is_file()
            else pd.DataFrame(columns=["notebook"]))


def duration_text(seconds: float) -> str:
    """'2 h 31 min', '14 min 5 s'."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def run_summary_markdown(run_times, whole: dict | None) -> str:
    """The appendix's paragraph on how long the committed default run took, from its run_times.csv (`run_times`,
    a DataFrame of strings) and, when the run was one whole `tools/run_study.py` run, its study_run.json."""
    rows = {r["notebook"]: r for r in run_times.to_dict(orient="records")}
    if "total" not in rows:
        return "The default run has not been made yet: `make study` makes it.\n"
    total = float(rows["total"]["duration_s"])
    if "wall time" in rows and whole:
        wall = float(rows["wall time"]["duration_s"])
        return (f"**One run of `make study`: {duration_text(wall)}.** The committed default run is a single run of "
                f"`tools/run_study.py` (what `make study` runs after installing), from the corpus to the last "
                f"notebook, with `--jobs {whole['jobs']}` on a machine with {whole['cpu_count']} CPUs, started "
                f"{whole['started_utc'].replace('T', ' ').rstrip('Z')} UTC: {duration_text(wall)} of wall time "
                f"(the corpus {duration_text(float(whole['corpus_s']))}; the book, built after it, and the first "
                f"install take a few minutes more). The notebooks' own times add up to {duration_text(total)}, "
                f"more than the wall time: notebooks ran side by side.\n")
    return (f"**Made in parts.** The committed default run was not one run of `make study`: its notebooks' "
            f"recorded times add up to {duration_text(total)} (the table's last row), which is neither its wall "
            f"time nor its cost (see below).\n")


def write_run_summary(results_root: Path = ROOT / "data" / "results", out_dir: Path = GENERATED_DIR) -> Path:
    """book/_generated/run_summary_study.md: `run_summary_markdown` of the published preset's committed run."""
    results = results_root / PUBLISHED_PRESET
    whole_file = results / "study_run.json"
    whole = json.loads(whole_file.read_text()) if whole_file.is_file() else None
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"run_summary_{PUBLISHED_PRESET}.md"
    write_if_changed(out, run_summary_markdown(read_run_times(results), whole))
    return out


def toc_for_preset(preset: str, toc_text: str, root: Path = ROOT) -> tuple[str, list[str]]:
    """The table of contents for a preset's results: paths moved to data/results/<preset>/ (the same for the
    published preset), missing ones dropped.

    Returns (toc text, the dropped results paths). Only lines naming a results notebook change.
    """
    published = f"data/results/{PUBLISHED_PRESET}/"
    lines, dropped = [], []
    for line in toc_text.splitlines():
        match = re.match(r"^(\s*- file:\s*)" + re.escape(published) + r"(\S+)\s*$", line)
        if match:
            path = f"data/results/{preset}/{match.group(2)}"
            if not any((root / path).with_suffix(s).is_file() for s in (".ipynb", ".md")):
                dropped.append(path)
                continue
            line = match.group(1) + path
        lines.append(line)
    text = "\n".join(lines) + "\n"
    # A `sections:` key left with no entries is invalid: remove it.
    text = re.sub(r"^([ \t]*)sections:[ \t]*\n(?!\1[ \t]+- )", "", text, flags=re.M)
    return text, dropped


LAUNCH_LINK = re.compile(r"(urlpath=lab/tree/|/blob/[^/\"]+/)data/results/[a-z]+/(\d\d_\w+)\.ipynb")


def relink_launch_buttons(html_dir: Path) -> int:
    """Point the Binder and Colab buttons of every results page at the notebook itself, notebooks/<stem>.ipynb
    (committed, outputs-free, at the lab preset by default) rather than at the executed copy the page shows.
    Returns how many links changed."""
    changed = 0
    for page in html_dir.rglob("*.html"):
        text = page.read_text()
        new, n = LAUNCH_LINK.subn(r"\1notebooks/\2.ipynb", text)
        if n:
            page.write_text(new)
            changed += n
    return changed


def output_dir(preset: str) -> Path:
    """Default jupyter-book --path-output of a preset's book."""
    return ROOT / "book" if preset == PUBLISHED_PRESET else ROOT / "book" / "_build" / preset


def html_dir(preset: str, out: Path | None = None) -> Path:
    """Where the HTML of a preset's book lands."""
    return (out or output_dir(preset)) / "_build" / "html"


def build(preset: str = PUBLISHED_PRESET, out: Path | None = None, quiet: bool = False) -> int:
    """Build the book for `preset` into `out` (jupyter-book's --path-output); returns the exit status."""
    ship_plotly_js()
    ship_mathjax()
    write_findings(preset)
    write_run_times()
    write_run_summary()
    toc = ROOT / "_toc.yml"
    out = out or output_dir(preset)
    out.mkdir(parents=True, exist_ok=True)
    text, dropped = toc_for_preset(preset, toc.read_text())
    for path in dropped:  # its chapter says the results are pending (tests/test_book.py checks it)
        print(f"book: {path} does not exist yet; its page is left out of the {preset} book")
    toc = out / "_build" / "_toc.yml"
    toc.parent.mkdir(parents=True, exist_ok=True)
    toc.write_text(text)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--path-output", str(out), "--toc", str(toc),
           "-W", "-n", "--keep-going", "--all"]
    if quiet:
        cmd.append("-q")
    print("book:", " ".join(cmd), flush=True)
    status = subprocess.run(cmd, cwd=ROOT).returncode
    html = html_dir(preset, out) / "index.html"
    if status == 0:
        relink_launch_buttons(html.parent)
        print(f"book: built {html}")
    else:
        print(f"book: the build failed (warnings count as errors); see the messages above", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=PUBLISHED_PRESET, choices=PRESETS,
                        help="whose results the pages show (default: %(default)s, the published book)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (jupyter-book --path-output); HTML lands in OUT/_build/html")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = parser.parse_args(argv)
    return build(args.preset, args.out, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
