"""The book works offline: MathJax 2 is shipped from Debian's libjs-mathjax into _static/mathjax/, _config.yml
loads it from there, cells' stderr stays out of the pages, and tools/check_figures.py tells typeset equations
from raw TeX and flags anything a page loads from another host. The real build is checked in
tests/test_book.py::test_published_book_builds_without_warnings_and_draws_every_figure (one build for both)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_book  # noqa: E402
import check_figures  # noqa: E402

needs_chromium = pytest.mark.skipif(
    check_figures.find_chromium() is None,
    reason="Debian's chromium is not installed (`make apt` or `apt-get install -y chromium`)",
)


def sphinx_config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]


# -- shipping MathJax ---------------------------------------------------------------------------------------------
def test_ship_mathjax_copies_a_small_working_subset(tmp_path):
    """`make install` installs libjs-mathjax and fonts-mathjax, so the subset must be there to copy."""
    mathjax_js = build_book.ship_mathjax(tmp_path)
    shipped = tmp_path / "mathjax"
    assert mathjax_js == shipped / "MathJax.js" and mathjax_js.is_file()
    for needed in [f"config/{build_book.MATHJAX_CONFIG}.js", "jax/output/CommonHTML/jax.js",
                   "jax/output/CommonHTML/fonts/TeX/fontdata.js", "jax/output/CommonHTML/autoload/mtable.js",
                   "jax/element/mml/optable/MathOperators.js", "extensions/TeX/boldsymbol.js",
                   "extensions/MathMenu.js", "fonts/HTML-CSS/TeX/woff/MathJax_Main-Regular.woff"]:
        assert (shipped / needed).is_file(), needed
    files = [p for p in shipped.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2_000_000  # of MathJax's 54 MB
    assert not (shipped / "localization").exists() and not (shipped / "jax/output/SVG").exists()


def test_ship_mathjax_is_idempotent_and_drops_stale_files(tmp_path):
    build_book.ship_mathjax(tmp_path)
    main_js = tmp_path / "mathjax" / "MathJax.js"
    stamp = main_js.stat().st_mtime_ns
    stale = tmp_path / "mathjax" / "old" / "stale.js"
    stale.parent.mkdir()
    stale.write_text("//")
    build_book.ship_mathjax(tmp_path)
    assert main_js.stat().st_mtime_ns == stamp  # not copied again
    assert not stale.exists() and not stale.parent.exists()


def test_ship_mathjax_names_the_fix_when_mathjax_is_missing(tmp_path):
    with pytest.raises(SystemExit) as exc:
        build_book.ship_mathjax(tmp_path / "static", source=tmp_path / "no-mathjax")
    message = str(exc.value)
    assert message.startswith("error: ") and "libjs-mathjax" in message and "make install" in message
    assert "\n" not in message


def test_config_loads_the_local_mathjax_2_and_hides_stderr():
    config = sphinx_config()
    path = config["mathjax_path"]
    assert "://" not in path and not path.startswith("//")  # from _static/, never a CDN
    assert path == f"mathjax/MathJax.js?config={build_book.MATHJAX_CONFIG}"
    assert "mathjax3_config" not in config  # MathJax 2 reads mathjax2_config
    assert "math" in config["mathjax2_config"]["tex2jax"]["processClass"].split("|")
    assert config["nb_output_stderr"] == "remove"


# -- the check: remote resources ----------------------------------------------------------------------------------
def write_page(path: Path, head: str = "", body: str = "<p>page</p>"):
    path.write_text(f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>")


def test_static_check_flags_anything_loaded_from_another_host(tmp_path):
    (tmp_path / "_static").mkdir()
    build_book.ship_plotly_js(tmp_path / "_static")
    write_page(tmp_path / "mathjax.html", '<script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex.js">'
                                          "</script>")
    write_page(tmp_path / "fonts.html", '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=X">'
                                        "<style>@import url('https://cdnjs.cloudflare.com/a.css');</style>")
    write_page(tmp_path / "image.html", body='<img src="//unpkg.com/badge.svg">')
    write_page(tmp_path / "fine.html",  # links to follow, a canonical address and thebe's on-click loader are fine
               '<link rel="canonical" href="https://example.org/fine.html">'
               '<script>const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"</script>'
               '<script src="_static/mathjax/MathJax.js?config=TeX-AMS_CHTML"></script>',
               '<a href="https://mybinder.org/v2/gh/x/y">Binder</a>')
    problems = check_figures.static_problems(tmp_path, check_figures.html_pages(tmp_path))
    by_page = {page: [p for p in problems if p.startswith(page + ":")] for page in
               ("mathjax.html", "fonts.html", "image.html", "fine.html")}
    assert len(by_page["mathjax.html"]) == 1 and "cdn.jsdelivr.net/npm/mathjax" in by_page["mathjax.html"][0]
    assert "fails offline" in by_page["mathjax.html"][0]
    assert len(by_page["fonts.html"]) == 2
    assert any("fonts.googleapis.com" in p for p in by_page["fonts.html"])
    assert any("cdnjs.cloudflare.com" in p for p in by_page["fonts.html"])
    assert len(by_page["image.html"]) == 1 and "<img src> loads //unpkg.com/badge.svg" in by_page["image.html"][0]
    assert by_page["fine.html"] == []
    assert len(problems) == 4, problems


# -- the check: rendered math -------------------------------------------------------------------------------------
def mathjax_head() -> str:
    """The <head> scripts Sphinx writes from _config.yml (sphinx.ext.mathjax.install_mathjax), for a page at the
    root of the book."""
    config = sphinx_config()
    settings = json.dumps(config["mathjax2_config"])
    return (f'<script type="text/x-mathjax-config">MathJax.Hub.Config({settings})</script>'
            f'<script defer src="_static/{config["mathjax_path"]}"></script>')


def math_body(*equations: str) -> str:
    """A page section as myst-parser writes it: ignored by MathJax except for its math elements."""
    spans = " and ".join(f'<span class="math notranslate nohighlight">\\({tex}\\)</span>' for tex in equations)
    aligned = "\\begin{aligned} a &= \\sum_i b_i \\end{aligned}"
    display = f'<div class="math notranslate nohighlight">\\[{aligned}\\]</div>'
    return f'<section class="tex2jax_ignore mathjax_ignore"><p>inline {spans}</p>{display}</section>'


@needs_chromium
@pytest.mark.browser
def test_check_tells_typeset_math_from_raw_tex(tmp_path):
    build_book.ship_plotly_js(tmp_path / "_static")
    build_book.ship_mathjax(tmp_path / "_static")
    write_page(tmp_path / "typeset.html", mathjax_head(), math_body("\\boldsymbol{W} \\in \\mathbb{R}^{d}", "T^2"))
    write_page(tmp_path / "raw.html", "", math_body("T^2"))  # no MathJax: what a CDN copy shows offline
    write_page(tmp_path / "unknown.html", mathjax_head(), math_body("\\cancel{x}"))
    write_page(tmp_path / "plain.html", mathjax_head(), "<p>no equations</p>")
    problems = check_figures.check(tmp_path, [], check_figures.find_chromium(), verbose=False,
                                   math=["typeset.html", "raw.html", "plain.html", "missing.html"])
    assert not [p for p in problems if p.startswith("typeset.html")], problems
    assert any(p.startswith("raw.html: 2 of 2 equation(s) not typeset, shown as raw TeX") for p in problems)
    assert any(p.startswith("unknown.html: MathJax does not know \\cancel") for p in problems)
    assert "plain.html: no equations on the page, which must show typeset math" in problems
    assert any(p.startswith("missing.html: no such page") for p in problems)
    assert len(problems) == 4, problems
