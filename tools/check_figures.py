"""Check in a real browser, offline, that every interactive figure of the built book is drawn.

    python tools/check_figures.py book/_build/html

For each HTML page with a plotly figure (`<div class="plotly-graph-div">`), headless Chromium (Debian's
`chromium` package) loads the page from disk with every host name unresolvable, runs its scripts and dumps the
resulting DOM; a figure counts as drawn when plotly.js has built its `<svg class="main-svg">` inside the div.
The book must ship plotly.js once, as `_static/plotly.min.js`: a page that embeds plotly.js itself or loads it
from a CDN is an error too. Results pages (by default `data/results/*/*.html`) must show at least one figure.
Exit status: 0 when all is well, 1 with one line per problem, 2 when Chromium is missing.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
PLOTLY_JS_BANNER = "* plotly.js v"  # first comment line of plotly.min.js: a page containing it embeds plotly.js
CDN_HOSTS = ("cdn.plot.ly", "cdn.jsdelivr.net/npm/plotly", "unpkg.com/plotly")
SKIP_DIRS = {"_static", "_sources", "_images"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


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


def html_pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html") if not SKIP_DIRS & set(p.relative_to(html_dir).parts))


def static_problems(html_dir: Path, pages: list[Path]) -> list[str]:
    """Problems visible without a browser: plotly.js shipped once, never embedded, never from a CDN."""
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
    return problems


def check(html_dir: Path, require: list[str], chromium: str, verbose: bool = True) -> list[str]:
    """All problems of a built book (empty when every figure is drawn)."""
    pages = html_pages(html_dir)
    if not pages:
        return [f"{html_dir}: no HTML pages; build the book first (make book)"]
    problems = static_problems(html_dir, pages)
    for page in pages:
        rel = page.relative_to(html_dir).as_posix()
        required = any(fnmatch.fnmatch(rel, pattern) for pattern in require)
        if "plotly-graph-div" not in page.read_text(errors="replace"):
            if required:
                problems.append(f"{rel}: a results page without any interactive figure")
            continue
        try:
            figures = figures_in(dump_dom(chromium, page))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{rel}: {exc}")
            continue
        blank = [f["id"] for f in figures if not f["drawn"]]
        if verbose:
            print(f"{rel}: {len(figures) - len(blank)} of {len(figures)} figure(s) drawn")
        if not figures:
            problems.append(f"{rel}: the figure divs disappeared from the rendered page")
        for fig_id in blank:
            problems.append(f"{rel}: figure {fig_id} was not drawn (is _static/plotly.min.js loaded?)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built book, e.g. book/_build/html")
    parser.add_argument("--require", nargs="*", default=["data/results/*/*.html"], metavar="GLOB",
                        help="pages (relative to html_dir) that must show a figure (default: %(default)s)")
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
    problems = check(args.html_dir, args.require, chromium, verbose=not args.quiet)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems and not args.quiet:
        print(f"figures: all drawn offline in {args.html_dir}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
