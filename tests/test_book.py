"""The book: its table of contents, honest chapters, notebooks with papermill parameters, plotly shipped once,
and (marked `browser`) a real build whose figures headless Chromium draws offline."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import plotly.graph_objects as go
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_book  # noqa: E402
import check_figures  # noqa: E402
from study_plan import CHAPTER_NEEDS, EXPERIMENTS, PENDING_MARKER, PUBLISHED_PRESET  # noqa: E402

from compress_lib import plotting  # noqa: E402

COMMON_PARAMETERS = {"preset", "frame_ms", "seed", "data_dir", "output_dir"}
needs_chromium = pytest.mark.skipif(
    check_figures.find_chromium() is None,
    reason="Debian's chromium is not installed (`make apt` or `apt-get install -y chromium`)",
)


def toc_files(toc: dict | list) -> list[str]:
    """Every `file:` of a jupyter-book _toc.yml, in order."""
    found = []
    if isinstance(toc, dict):
        for key, value in toc.items():
            if key in ("file", "root"):
                found.append(value)
            else:
                found += toc_files(value)
    elif isinstance(toc, list):
        for item in toc:
            found += toc_files(item)
    return found


def published_toc() -> list[str]:
    """The pages of the published book: _toc.yml without the results the study has not made yet (as the build)."""
    text, _ = build_book.toc_for_preset(PUBLISHED_PRESET, (ROOT / "_toc.yml").read_text())
    return toc_files(yaml.safe_load(text))


def listed_toc() -> list[str]:
    return toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))


def results_page(stem: str) -> str:
    return f"data/results/{PUBLISHED_PRESET}/{stem}"


# -- table of contents and chapters ---------------------------------------------------------------------------
def test_toc_names_existing_pages_and_every_chapter():
    files = published_toc()
    assert files[0] == "book/intro"
    for f in files:
        assert any((ROOT / f).with_suffix(s).is_file() for s in (".md", ".ipynb")), f"_toc.yml names missing {f}"
    chapters = {f"book/{p.stem}" for p in (ROOT / "book").glob("*.md")}
    assert chapters - set(files) == set(), "book pages missing from _toc.yml"
    assert len(files) == len(set(files)), "a page is listed twice"
    listed = listed_toc()
    assert [f for f in listed if not f.startswith("data/results/")] == [f for f in files if
                                                                         not f.startswith("data/results/")]
    assert {f"data/results/{PUBLISHED_PRESET}/{e.stem}" for e in EXPERIMENTS} == {
        f for f in listed if f.startswith("data/results/")}, "_toc.yml lists each experiment's results page once"


def test_every_results_page_in_the_toc_is_an_experiment_of_the_plan():
    stems = {e.stem for e in EXPERIMENTS}
    for f in published_toc():
        if f.startswith("data/results/"):
            assert f.startswith(f"data/results/{PUBLISHED_PRESET}/"), f"{f}: the book shows {PUBLISHED_PRESET}"
            assert Path(f).name in stems, f"{f} is not an experiment of tools/study_plan.py"


@pytest.mark.parametrize("chapter", sorted(CHAPTER_NEEDS))
def test_chapters_say_honestly_whether_their_results_exist(chapter):
    """A chapter whose notebooks' results are not in the book says so (naming them); one with all of them doesn't."""
    text = (ROOT / "book" / f"{chapter}.md").read_text()
    in_book = set(published_toc())
    missing = [stem for stem in CHAPTER_NEEDS[chapter] if results_page(stem) not in in_book]
    if missing:
        assert PENDING_MARKER in text, f"book/{chapter}.md shows no '{PENDING_MARKER}' note but lacks {missing}"
        note = text[text.index(PENDING_MARKER):]
        unnamed = [stem for stem in missing if f"notebooks/{stem}.md" not in note]
        assert unnamed == [], f"book/{chapter}.md's pending note does not name notebooks {unnamed}"
    else:
        assert PENDING_MARKER not in text, f"book/{chapter}.md still says results are pending, but all are in the book"


def test_results_pages_have_their_chapter_as_parent():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            for section in chapter.get("sections", []):
                if section["file"].startswith("data/results/"):
                    stem = Path(section["file"]).name
                    expected = next(e.chapter for e in EXPERIMENTS if e.stem == stem)
                    assert chapter["file"] == f"book/{expected}", f"{stem} belongs under book/{expected}"


def test_preset_toc_points_at_that_preset_and_drops_what_is_missing(tmp_path):
    toc = (
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: R\n    chapters:\n"
        "      - file: book/a\n        sections:\n          - file: data/results/study/01_x\n"
        "      - file: book/b\n        sections:\n          - file: data/results/study/02_y\n"
        "      - file: book/c\n"
    )
    (tmp_path / "data/results/smoke").mkdir(parents=True)
    (tmp_path / "data/results/smoke/01_x.ipynb").write_text("{}")
    text, dropped = build_book.toc_for_preset("smoke", toc, root=tmp_path)
    assert dropped == ["data/results/smoke/02_y"]
    parsed = yaml.safe_load(text)
    chapters = parsed["parts"][0]["chapters"]
    assert chapters[0] == {"file": "book/a", "sections": [{"file": "data/results/smoke/01_x"}]}
    assert chapters[1] == {"file": "book/b"}  # its only section is gone, and so is the empty `sections:`
    assert chapters[2] == {"file": "book/c"}


def test_config_ships_plotly_once_and_never_executes():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    sphinx = config["sphinx"]["config"]
    assert sphinx["html_js_files"] == ["plotly.min.js"]
    assert sphinx["html_static_path"] == ["book/_static"]
    assert config["launch_buttons"]["binderhub_url"] and config["launch_buttons"]["colab_url"]
    assert config["repository"]["url"].startswith("https://")


# -- notebooks --------------------------------------------------------------------------------------------------
def notebook_sources() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md"))


def test_there_are_notebooks_and_each_belongs_to_the_plan():
    sources = notebook_sources()
    assert sources, "no notebooks in notebooks/"
    stems = {e.stem for e in EXPERIMENTS}
    for path in sources:
        assert path.stem in stems, f"{path.name} is not in tools/study_plan.py's EXPERIMENTS"


@pytest.mark.parametrize("path", notebook_sources(), ids=lambda p: p.stem)
def test_notebook_has_a_papermill_parameters_cell(path, tmp_path):
    """One `parameters` cell, flat scalars with a comment each, declaring at least the common parameters."""
    import jupytext
    import papermill

    nb = jupytext.read(path)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected one cell tagged `parameters`, found {len(tagged)}"
    for line in tagged[0].source.splitlines():
        if line.strip():
            assert re.match(r"^\w+ = .+  # \S", line), f"{path.name}: `{line}` needs `name = value  # comment`"
            assert line.count("=") == 1, f"{path.name}: papermill cannot parse `{line}` (one '=' per line)"
    ipynb = tmp_path / f"{path.stem}.ipynb"
    jupytext.write(nb, ipynb, fmt="ipynb")
    declared = set(papermill.inspect_notebook(str(ipynb)))
    assert COMMON_PARAMETERS <= declared, f"{path.name} lacks {COMMON_PARAMETERS - declared}"


# -- plotly shipped once --------------------------------------------------------------------------------------
def small_figure() -> go.Figure:
    return go.Figure(go.Bar(x=["a", "b"], y=[1, 2], name="</script><b>x"), layout=dict(title="t", height=300))


def test_figure_bundle_uses_the_global_plotly_and_never_embeds_it():
    bundle = plotting.figure_bundle(small_figure())
    assert set(bundle) == {plotting.PLOTLY_MIME, "text/html", "text/plain"}
    html = bundle["text/html"]
    assert "window.Plotly.newPlot" in html
    assert check_figures.PLOTLY_JS_BANNER not in html and len(html) < 50_000
    assert "</script><b>" not in html  # a trace name cannot close the script early
    assert 'class="plotly-graph-div"' in html and "height:300px" in html
    assert bundle[plotting.PLOTLY_MIME]["data"][0]["y"] == [1, 2]


def test_myst_nb_plugin_draws_plotly_outputs_and_is_registered():
    from importlib.metadata import entry_points

    from myst_nb.core.render import MimeData

    eps = {ep.name: ep.value for ep in entry_points(group="myst_nb.mime_renderers")}
    assert eps.get("plotly") == "compress_lib.plotting:PlotlyMimeRenderer", "reinstall: make install"
    content = json.loads(small_figure().to_json())
    data = MimeData(plotting.PLOTLY_MIME, content, cell_index=3, output_index=0)
    nodes = plotting.PlotlyMimeRenderer.handle_mime(None, data, inline=False)
    assert len(nodes) == 1 and nodes[0]["format"] == "html"
    assert "Plotly.newPlot" in nodes[0].astext() and "-3-0" in nodes[0].astext()
    assert plotting.PlotlyMimeRenderer.handle_mime(None, MimeData("text/plain", "x"), inline=False) is None


# -- the browser check ----------------------------------------------------------------------------------------
def write_page(path: Path, body: str, with_plotly: bool = True):
    script = '<script src="_static/plotly.min.js"></script>' if with_plotly else ""
    path.write_text(f"<!DOCTYPE html><html><head>{script}</head><body><p>page</p>{body}</body></html>")


@needs_chromium
@pytest.mark.browser
def test_check_figures_tells_drawn_from_blank(tmp_path):
    build_book.ship_plotly_js(tmp_path / "_static")
    html = plotting.figure_html(small_figure())
    write_page(tmp_path / "drawn.html", html)
    write_page(tmp_path / "blank.html", html, with_plotly=False)
    write_page(tmp_path / "plain.html", "<p>no figure here</p>")
    problems = check_figures.check(tmp_path, require=["plain.html"], chromium=check_figures.find_chromium())
    assert len(problems) == 2, problems
    assert "blank.html: figure" in problems[0] and "was not drawn" in problems[0]
    assert "plain.html: a results page without any interactive figure" in problems[1]
    assert check_figures.check(tmp_path / "nothing", [], check_figures.find_chromium())[0].endswith("make book)")


def test_static_check_catches_embedded_and_cdn_plotly(tmp_path):
    (tmp_path / "_static").mkdir()
    write_page(tmp_path / "embedded.html", f"<script>/**\n{check_figures.PLOTLY_JS_BANNER}4.1.1\n*/</script>")
    write_page(tmp_path / "cdn.html", '<script src="https://cdn.plot.ly/plotly-3.0.1.min.js"></script>')
    problems = check_figures.static_problems(tmp_path, check_figures.html_pages(tmp_path))
    assert any("plotly.min.js is missing" in p for p in problems)
    assert any("cdn.html: loads plotly.js from cdn.plot.ly" in p for p in problems)
    assert any("embedded.html: embeds plotly.js" in p for p in problems)


@needs_chromium
@pytest.mark.browser
@pytest.mark.slow
def test_published_book_builds_without_warnings_and_draws_every_figure(tmp_path):
    """`jupyter-book build -W -n --keep-going` of the real book, then every figure and equation checked in
    Chromium, offline: math typeset by the shipped MathJax (intro and a method chapter must have some), nothing
    loaded from another host, no path of the machine that built it (one build serves tests/test_book_offline.py
    too)."""
    assert build_book.build(PUBLISHED_PRESET, out=tmp_path, quiet=True) == 0
    html_dir = build_book.html_dir(PUBLISHED_PRESET, tmp_path)
    problems = check_figures.check(html_dir, ["data/results/*/*.html"], check_figures.find_chromium(), verbose=False,
                                   math=check_figures.MATH_PAGES)
    assert problems == []  # includes: no page loads a script, stylesheet, font or image from a CDN
    assert (html_dir / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    assert (html_dir / "_static" / "mathjax" / "MathJax.js").is_file()
    machine_paths = [str(ROOT), str(tmp_path), "/root/", "/.venv/", "site-packages"]
    for page in check_figures.html_pages(html_dir):
        text = page.read_text(errors="replace")
        assert not check_figures.remote_resources(text), page
        leaked = [path for path in machine_paths if path in text]
        assert not leaked, f"{page.relative_to(html_dir)} shows {leaked} (a stderr stream? nb_output_stderr)"
    pages = [f for f in published_toc() if f.startswith("data/results/")]
    assert pages, "the book has no executed notebook page"
    page = (html_dir / pages[0]).with_suffix(".html").read_text()
    assert "mybinder.org" in page and "colab.research.google.com" in page  # launch buttons
    assert "btn-download" in page or "download" in page.lower()  # download button


# -- results pages read as results ----------------------------------------------------------------------------
COLLAPSED = {"hide-cell", "remove-cell"}  # myst-nb tags that keep a cell (code and output) out of the reader's way


def code_cells(notebook: dict) -> list[dict]:
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def collapsed(cell: dict) -> bool:
    return bool(COLLAPSED & set(cell.get("metadata", {}).get("tags", [])))


@pytest.mark.parametrize("stem", [e.stem for e in EXPERIMENTS])
def test_results_pages_hide_their_parameters_imports_and_code(stem, tmp_path):
    """In the notebook's source and in its committed executed page: the imports (first code cell), the parameters
    and papermill's injected parameters are collapsed, and no code cell is shown open."""
    import jupytext

    pages = [json.loads(jupytext.writes(jupytext.read(ROOT / "notebooks" / f"{stem}.md"), fmt="ipynb"))]
    executed = ROOT / results_page(stem)
    if executed.with_suffix(".ipynb").is_file():
        pages.append(json.loads(executed.with_suffix(".ipynb").read_text()))
    for page in pages:
        cells = code_cells(page)
        assert collapsed(cells[0]), f"{stem}: the imports cell is not collapsed"
        for cell in cells:
            tags = set(cell.get("metadata", {}).get("tags", []))
            if tags & {"parameters", "injected-parameters"}:
                assert collapsed(cell), f"{stem}: a parameters cell is shown"
            # code meant to be read (the lab's measurements, an exercise's answer and check) says so: show-code
            assert tags & (COLLAPSED | {"hide-input", "remove-input", "show-code"}), \
                f"{stem}: a code cell is shown open: {''.join(cell['source'])[:60]!r}"


# -- launching a notebook: Colab setup cell, committed .ipynb forms, launch buttons -----------------------------
def setup_cell(path: Path) -> str:
    import jupytext

    cells = [c.source for c in jupytext.read(path).cells if c.cell_type == "code" and "# Setup: on Google Colab" in c.source]
    assert len(cells) == 1, f"{path.name}: expected one Colab setup cell, found {len(cells)}"
    return cells[0]


def test_every_notebook_starts_with_the_same_colab_setup_cell_naming_the_configured_repository():
    import jupytext

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    cells = {path.stem: setup_cell(path) for path in notebook_sources()}
    assert len(set(cells.values())) == 1, "the notebooks' setup cells differ"
    cell = next(iter(cells.values()))
    assert f'REPOSITORY = "{config["repository"]["url"]}"' in cell
    assert "cat apt.txt" in cell and "requirements.txt" in cell
    for path in notebook_sources():
        first = next(c for c in jupytext.read(path).cells if c.cell_type == "code")
        assert "# Setup: on Google Colab" in first.source, f"{path.name}: the setup cell is not the first code cell"
        assert "hide-cell" in first.metadata.get("tags", []), f"{path.name}: the setup cell is not collapsed"


def test_the_setup_cell_does_nothing_outside_colab(tmp_path):
    """Run (as IPython would transform it) in a fresh interpreter without google.colab: no clone, no cd, no
    install; the shell-escape lines never run."""
    import subprocess

    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(setup_cell(notebook_sources()[0]))
    probe = code + "\nimport os, sys\nprint(os.getcwd(), 'google.colab' in sys.modules, 'REPOSITORY' in globals())\n"
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path), "False", "False"]
    assert list(tmp_path.iterdir()) == []


def test_committed_ipynb_forms_match_the_text_notebooks():
    """notebooks/<stem>.ipynb (what the launch buttons open) holds the cells of notebooks/<stem>.md (make notebooks
    writes it)."""
    import jupytext

    for path in notebook_sources():
        ipynb = path.with_suffix(".ipynb")
        assert ipynb.is_file(), f"{ipynb.name} is missing: run `make notebooks` and commit it"
        committed = json.loads(ipynb.read_text())
        fresh = json.loads(jupytext.writes(jupytext.read(path), fmt="ipynb"))
        cells = [[(c["cell_type"], "".join(c["source"]), c["metadata"].get("tags")) for c in nb["cells"]]
                 for nb in (committed, fresh)]
        assert cells[0] == cells[1], f"{ipynb.name} is out of date with {path.name}: run `make notebooks`"
        assert all(not c.get("outputs") for c in committed["cells"]), f"{ipynb.name} holds outputs"


def test_launch_buttons_open_the_notebook_not_its_executed_copy(tmp_path):
    page = tmp_path / "data" / "results" / "study" / "09_efficiency.html"
    page.parent.mkdir(parents=True)
    page.write_text('<a href="https://mybinder.org/v2/gh/o/n/main?urlpath=lab/tree/data/results/study/09_efficiency.ipynb">'
                    '<a href="https://colab.research.google.com/github/o/n/blob/main/data/results/study/09_efficiency.ipynb">'
                    '<a href="../../../_sources/data/results/study/09_efficiency.ipynb">')
    assert build_book.relink_launch_buttons(tmp_path) == 2
    text = page.read_text()
    assert "urlpath=lab/tree/notebooks/09_efficiency.ipynb" in text and "blob/main/notebooks/09_efficiency.ipynb" in text
    assert "_sources/data/results/study/09_efficiency.ipynb" in text  # the download link keeps the executed page
