"""Check in a real browser, offline, that every interactive figure and every equation of the built book is drawn.

    python tools/check_figures.py book/_build/html

For each HTML page with a plotly figure (`<div class="plotly-graph-div">`) or an equation (Sphinx's
`<span class="math">` / `<div class="math">`), headless Chromium (Debian's `chromium` package) loads the page
from disk with every host name unresolvable, runs its scripts and dumps the resulting DOM. A figure counts as
drawn when plotly.js has built its `<svg class="main-svg">` inside the div; an equation counts as typeset when
MathJax has put its output (`mjx-chtml` / `MathJax_CHTML`, or MathJax 3's `<mjx-container>`) inside the element
and none of its visible text is raw TeX (`\\(`, `\\[`, `$$`); an undefined macro or a TeX error is a problem too.
The book must ship plotly.js once, as `_static/plotly.min.js`: a page that embeds plotly.js itself or loads it
from a CDN is an error too, and so is a page that loads anything (script, stylesheet, font, image) from another
host. Results pages (by default `data/results/*/*.html`) must show at least one figure; the intro and a method
chapter (by default `book/intro.html`, `book/efficiency.html`) must show typeset equations.
Exit status: 0 when all is well, 1 with one line per problem, 2 when Chromium is missing.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
PLOTLY_JS_BANNER = "* plotly.js v"  # first comment line of plotly.min.js: a page containing it embeds plotly.js
CDN_HOSTS = ("cdn.plot.ly", "cdn.jsdelivr.net/npm/plotly", "unpkg.com/plotly")
SKIP_DIRS = {"_static", "_sources", "_images"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Attributes through which a page loads something as it opens (not links the reader may follow: <a href>).
RESOURCE_ATTRIBUTES = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src",
                       "audio": "src", "video": "src", "embed": "src", "object": "data", "track": "src"}
# <link rel=...> values that name a related page rather than load a resource.
NAVIGATION_RELS = {"canonical", "alternate", "author", "license", "help", "search", "index", "next", "prev",
                   "copyright", "me", "nofollow", "noopener", "noreferrer", "bookmark", "external", "tag"}
CSS_REMOTE_URL = re.compile(r"""(?:@import\s+|url\(\s*)["']?((?:https?:)?//[^"')\s;]+)""", re.I)
MATH_PAGES = ["book/intro.html", "book/efficiency.html"]  # must show typeset equations (--math)
RAW_TEX_DELIMITERS = ("\\(", "\\[", "$$")
# MathJax 2's noUndefined extension writes an unknown macro in red: <mtext mathcolor="red">\cancel</mtext>.
UNDEFINED_MACRO = re.compile(r'<mtext mathcolor="red">(\\[A-Za-z]+)</mtext>')
MATHJAX_OUTPUT_CLASSES = {"mjx-chtml", "MathJax_CHTML", "MathJax", "MathJax_SVG", "MathJax_Display"}
MATHJAX_ERROR_CLASSES = {"mjx-noError", "MathJax_Error", "mjx-merror", "noError"}


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def dump_dom(chromium: str, page: Path, budget_ms: int = 10_000, timeout_s: float = 90) -> str:
    """The DOM of `page` after its scripts ran, from headless Chromium with networking cut off."""
    with tempfile.TemporaryDirectory(prefix="check-figures-") as profile:
        cmd = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",  # offline: no host name resolves
            f"--virtual-time-budget={budget_ms}", "--dump-dom", page.resolve().as_uri(),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"chromium failed on {page} (exit {result.returncode}): {result.stderr.strip()[-300:]}")
    return result.stdout


class _FigureFinder(HTMLParser):
    """Finds plotly figure divs and whether each contains an `svg.main-svg` (drawn by plotly.js)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int | None]] = []  # (tag, index of the figure this element opens)
        self.figures: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        figure = None
        if tag == "div" and "plotly-graph-div" in classes:
            figure = len(self.figures)
            self.figures.append({"id": attrs.get("id", "?"), "drawn": False})
        if tag == "svg" and "main-svg" in classes:
            for _, index in self.stack:
                if index is not None:
                    self.figures[index]["drawn"] = True
        if tag not in VOID_TAGS:
            self.stack.append((tag, figure))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return


def figures_in(dom: str) -> list[dict]:
    """[{'id': div id, 'drawn': bool}] for every plotly figure div of a DOM."""
    finder = _FigureFinder()
    finder.feed(dom)
    finder.close()
    return finder.figures


class _MathFinder(HTMLParser):
    """Finds Sphinx's math elements (span/div with class `math`) and what MathJax made of each: whether its
    output is inside, the text a reader sees there, the TeX MathJax kept, unknown macros and TeX errors."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int | None]] = []  # (tag, index of the equation this element opens)
        self.equations: list[dict] = []

    def _current(self) -> dict | None:
        for _, index in reversed(self.stack):
            if index is not None:
                return self.equations[index]
        return None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        current = self._current()
        opened = None
        if current is None and tag in ("span", "div") and "math" in classes:
            opened = len(self.equations)
            self.equations.append({"typeset": False, "visible": "", "tex": "", "undefined": [], "error": False})
        elif current is not None:
            if classes & MATHJAX_OUTPUT_CLASSES or tag == "mjx-container":
                current["typeset"] = True
            if classes & MATHJAX_ERROR_CLASSES:
                current["error"] = True
            current["undefined"] += UNDEFINED_MACRO.findall(attrs.get("data-mathml") or "")
        if tag not in VOID_TAGS:
            self.stack.append((tag, opened))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        current = self._current()
        if current is None:
            return
        inner_tag = self.stack[-1][0] if self.stack else ""
        if inner_tag == "script":
            current["tex"] += data  # MathJax 2 keeps the TeX in <script type="math/tex">
        elif inner_tag != "style":
            current["visible"] += data


def equations_in(dom: str) -> list[dict]:
    """For every math element of a DOM: {'typeset', 'visible', 'tex', 'undefined', 'error'} (see _MathFinder)."""
    finder = _MathFinder()
    finder.feed(dom)
    finder.close()
    return finder.equations


def has_math(html: str) -> bool:
    """Whether a built page has equations for MathJax to typeset (Sphinx's math elements)."""
    return re.search(r'<(?:span|div)\b[^>]*\bclass="math[ "]', html) is not None


def math_problems(rel: str, equations: list[dict], required: bool) -> list[str]:
    """One line per kind of problem with a rendered page's equations (none when all are typeset)."""
    if not equations:
        return [f"{rel}: no equations on the page, which must show typeset math"] if required else []
    problems = []
    raw = [eq for eq in equations
           if not eq["typeset"] or any(delimiter in eq["visible"] for delimiter in RAW_TEX_DELIMITERS)]
    if raw:
        first = " ".join((raw[0]["tex"] or raw[0]["visible"]).split())[:60]
        problems.append(f"{rel}: {len(raw)} of {len(equations)} equation(s) not typeset, shown as raw TeX "
                        f"(first: {first}); is _static/mathjax/ shipped and mathjax_path local? (make book)")
    undefined = sorted({macro for eq in equations for macro in eq["undefined"]})
    if undefined:
        problems.append(f"{rel}: MathJax does not know {', '.join(undefined)}: a MathJax 2.7 extension missing "
                        "from _static/mathjax/ (tools/build_book.py MATHJAX_FILES) or a macro it lacks")
    errors = [eq for eq in equations if eq["error"]]
    if errors:
        first = " ".join((errors[0]["tex"] or errors[0]["visible"]).split())[:60]
        problems.append(f"{rel}: MathJax could not typeset {len(errors)} equation(s) (first: {first})")
    return problems


class _ResourceFinder(HTMLParser):
    """Collects what a page loads as it opens: (tag, attribute, url) for scripts, stylesheets, images, frames,
    media, and the urls of @import / url(...) in its <style> elements and style attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.resources: list[tuple[str, str, str]] = []
        self.in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        attribute = RESOURCE_ATTRIBUTES.get(tag)
        rels = set((attrs.get("rel") or "").lower().split())
        if attribute and attrs.get(attribute) and not (tag == "link" and rels and rels <= NAVIGATION_RELS):
            self.resources.append((tag, attribute, attrs[attribute].strip()))
        for url in CSS_REMOTE_URL.findall(attrs.get("style") or ""):
            self.resources.append((tag, "style", url))
        self.in_style = tag == "style"

    def handle_endtag(self, tag):
        self.in_style = False

    def handle_data(self, data):
        if self.in_style:
            self.resources.extend(("style", "css", url) for url in CSS_REMOTE_URL.findall(data))


def remote_resources(html: str) -> list[tuple[str, str, str]]:
    """(tag, attribute, url) for everything a page loads from another host (http:, https: or //host urls)."""
    finder = _ResourceFinder()
    finder.feed(html)
    finder.close()
    return [(tag, attribute, url) for tag, attribute, url in finder.resources
            if re.match(r"(?:https?:)?//", url, re.I)]


def html_pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html") if not SKIP_DIRS & set(p.relative_to(html_dir).parts))


def static_problems(html_dir: Path, pages: list[Path]) -> list[str]:
    """Problems visible without a browser: plotly.js shipped once, never embedded, never from a CDN; nothing
    else loaded from another host either (a CDN's MathJax, fonts, stylesheets, images)."""
    problems = []
    if not (html_dir / "_static" / "plotly.min.js").is_file():
        problems.append(f"{html_dir}/_static/plotly.min.js is missing: the book must ship plotly.js once")
    for page in pages:
        text = page.read_text(errors="replace")
        rel = page.relative_to(html_dir)
        if PLOTLY_JS_BANNER in text:
            problems.append(f"{rel}: embeds plotly.js (use compress_lib.plotting.show, not the 'notebook' renderer)")
        for host in CDN_HOSTS:
            if host in text:
                problems.append(f"{rel}: loads plotly.js from {host}, which fails offline")
        for tag, attribute, url in remote_resources(text):
            if not any(host in url for host in CDN_HOSTS):  # plotly.js from a CDN is reported just above
                problems.append(f"{rel}: <{tag} {attribute}> loads {url} from the network, which fails offline; "
                                "ship it under _static/ (see tools/build_book.py)")
    return problems


def figure_problems(rel: str, figures: list[dict], verbose: bool) -> list[str]:
    """One line per figure of a rendered page that plotly.js did not draw."""
    blank = [f["id"] for f in figures if not f["drawn"]]
    if verbose:
        print(f"{rel}: {len(figures) - len(blank)} of {len(figures)} figure(s) drawn")
    problems = [f"{rel}: the figure divs disappeared from the rendered page"] if not figures else []
    for fig_id in blank:
        problems.append(f"{rel}: figure {fig_id} was not drawn (is _static/plotly.min.js loaded?)")
    return problems


def check(html_dir: Path, require: list[str], chromium: str, verbose: bool = True,
          math: list[str] | None = None) -> list[str]:
    """All problems of a built book (empty when every figure is drawn and every equation typeset).

    `require`: globs of pages that must show a figure; `math`: globs of pages that must show typeset equations
    (every page with equations is checked either way)."""
    pages = html_pages(html_dir)
    if not pages:
        return [f"{html_dir}: no HTML pages; build the book first (make book)"]
    problems = static_problems(html_dir, pages)
    math = math or []
    for pattern in math:
        if not any(fnmatch.fnmatch(page.relative_to(html_dir).as_posix(), pattern) for page in pages):
            problems.append(f"{pattern}: no such page in {html_dir}, which must show typeset math")
    to_load = []  # (page, rel, with_figures, with_math, needs_math) of the pages Chromium has to draw
    found = {}  # page -> its problems, reported in page order
    for page in pages:
        rel = page.relative_to(html_dir).as_posix()
        text = page.read_text(errors="replace")
        needs_figure = any(fnmatch.fnmatch(rel, pattern) for pattern in require)
        needs_math = any(fnmatch.fnmatch(rel, pattern) for pattern in math)
        with_figures, with_math = "plotly-graph-div" in text, has_math(text)
        found[page] = []
        if needs_figure and not with_figures:
            found[page].append(f"{rel}: a results page without any interactive figure")
        if needs_math and not with_math:
            found[page].append(f"{rel}: no equations on the page, which must show typeset math")
        if with_figures or with_math:
            to_load.append((page, rel, with_figures, with_math, needs_math))

    def load(page: Path) -> str | Exception:
        try:
            return dump_dom(chromium, page)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return exc

    # A headless Chromium spends part of a page's time starting and waiting: a few at once finish a little sooner.
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
        doms = list(pool.map(load, [item[0] for item in to_load]))
    for (page, rel, with_figures, with_math, needs_math), dom in zip(to_load, doms):  # in page order
        if isinstance(dom, Exception):
            found[page].append(f"{rel}: {dom}")
            continue
        if with_figures:
            found[page] += figure_problems(rel, figures_in(dom), verbose)
        if with_math:
            equations = equations_in(dom)
            found[page] += math_problems(rel, equations, needs_math)
            if verbose:
                typeset = sum(eq["typeset"] for eq in equations)
                print(f"{rel}: {typeset} of {len(equations)} equation(s) typeset")
    return problems + [problem for page in pages for problem in found[page]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built book, e.g. book/_build/html")
    parser.add_argument("--require", nargs="*", default=["data/results/*/*.html"], metavar="GLOB",
                        help="pages (relative to html_dir) that must show a figure (default: %(default)s)")
    parser.add_argument("--math", nargs="*", default=MATH_PAGES, metavar="GLOB",
                        help="pages (relative to html_dir) that must show typeset equations "
                             "(default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("error: Chromium not found; install Debian's package: apt-get install -y chromium (or `make apt`)",
              file=sys.stderr)
        return 2
    if not args.html_dir.is_dir():
        print(f"error: {args.html_dir} is not a folder; build the book first (make book)", file=sys.stderr)
        return 1
    problems = check(args.html_dir, args.require, chromium, verbose=not args.quiet, math=args.math)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems and not args.quiet:
        print(f"figures and equations: all drawn offline in {args.html_dir}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
