"""Interactive plotly figures that render offline in the book and live in Jupyter, with plotly.js shipped once.

plotly's default renderer writes only `application/vnd.plotly.v1+json`, which Jupyter Book drops (the figure is
missing from the HTML); the `notebook` renderer embeds all of plotly.js (about 4.8 MB) into every output; and
`notebook_connected` loads it from a CDN, which leaves a blank figure offline. Here instead:

- The book loads plotly.js once for all pages: `tools/build_book.py` copies `plotly.min.js` from the plotly
  wheel into `book/_static/`, and `_config.yml` lists it in `html_js_files`.
- `PlotlyMimeRenderer`, a myst-nb plugin registered in pyproject.toml, turns every plotly output of an executed
  notebook into a `<div>` plus a short script that draws it with that global `Plotly`.
- `show(fig)` displays one bundle with three forms of the figure: the plotly JSON (drawn natively by JupyterLab,
  Notebook 7 and VS Code, and by the plugin in the book), `text/html` (the same div and script, for front-ends
  without a plotly renderer; where no `Plotly` is loaded the div says so instead of staying blank), and
  `text/plain`. A plain `fig.show()` works in the book too; `show` adds the HTML fallback.

Div ids are derived from the figure's content and position, so rebuilding gives identical pages.
"""

from __future__ import annotations

import hashlib
import itertools
import json

import plotly.graph_objects as go
import plotly.io as pio

PLOTLY_MIME = "application/vnd.plotly.v1+json"
DEFAULT_HEIGHT_PX = 450  # plotly's own default height

_counter = itertools.count()


def figure_html(fig: go.Figure | str, div_id: str | None = None) -> str:
    """HTML that draws a figure (a plotly Figure or its JSON) with an already loaded global `Plotly`.

    Never embeds plotly.js. Without a global `Plotly` the div says so instead of staying blank.
    """
    fig_json = fig if isinstance(fig, str) else pio.to_json(fig, validate=True, pretty=False)
    if div_id is None:
        digest = hashlib.sha1(fig_json.encode()).hexdigest()[:12]
        div_id = f"plotly-{digest}-{next(_counter)}"
    height_px = json.loads(fig_json).get("layout", {}).get("height") or DEFAULT_HEIGHT_PX
    # "</" inside a <script> would end it early: escape it, as plotly's own to_html does.
    safe_json = fig_json.replace("</", "<\\/")
    return (
        f'<div id="{div_id}" class="plotly-graph-div" style="height:{height_px}px; width:100%;"></div>\n'
        '<script type="text/javascript">\n'
        "(function () {\n"
        f'  var el = document.getElementById("{div_id}");\n'
        "  if (!el) { return; }\n"
        '  if (typeof window.Plotly === "undefined") {\n'
        '    el.textContent = "Interactive figure: plotly.js is not loaded on this page '
        '(the book loads it once from _static/plotly.min.js).";\n'
        "    return;\n"
        "  }\n"
        f"  var fig = {safe_json};\n"
        '  window.Plotly.newPlot(el, fig.data, fig.layout || {}, {"responsive": true, "displaylogo": false});\n'
        "})();\n"
        "</script>"
    )


def figure_bundle(fig: go.Figure) -> dict:
    """The display bundle of `fig`: {mime type: content} with the plotly JSON, text/html and text/plain."""
    fig_json = pio.to_json(fig, validate=True, pretty=False)
    title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else "untitled"
    return {
        PLOTLY_MIME: json.loads(fig_json),
        "text/html": figure_html(fig_json),
        "text/plain": f"<plotly figure: {title!r}, {len(fig.data)} trace(s)>",
    }


def show(fig: go.Figure) -> None:
    """Display `fig` in a notebook so that it is interactive in Jupyter and in the built book, offline."""
    from IPython.display import display

    display(figure_bundle(fig), raw=True)


class PlotlyMimeRenderer:
    """myst-nb plugin (entry point `myst_nb.mime_renderers`): draws `application/vnd.plotly.v1+json` outputs.

    Without it the book drops plotly's own output with a `mystnb.unknown_mime_type` warning. With it, any
    plotly output, from `show(fig)` or a plain `fig.show()`, becomes a div drawn by the book's shared plotly.js;
    for HTML builders it is preferred over the bundle's `text/html` form (priority 25 < 30).
    """

    mime_priority_overrides = [(builder, PLOTLY_MIME, 25) for builder in ("html", "dirhtml", "singlehtml")]

    @staticmethod
    def handle_mime(renderer, data, inline: bool):
        if data.mime_type != PLOTLY_MIME:
            return None
        from docutils import nodes

        content = data.content if isinstance(data.content, str) else json.dumps(data.content)
        digest = hashlib.sha1(content.encode()).hexdigest()[:12]
        div_id = f"plotly-{digest}-{data.cell_index}-{data.output_index}"
        return [nodes.raw(text=figure_html(content, div_id), format="html", classes=["output", "text_html"])]
