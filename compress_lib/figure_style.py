"""The book's one visual language: each method keeps its colour and marker in every figure.

A method (the `method` column of `summary.csv`) is drawn in one colour with one marker shape everywhere; the frame
rate is told by the line dash and by the marker's fill (20 ms: solid line, filled marker; 10 ms: dotted line, open
marker), never by colour. Figures call `marker`, `line` and `label` instead of choosing their own styles:

    fig.add_scatter(x=..., y=..., mode="lines+markers", name=label("heads", 20),
                    marker=marker("heads", 20), line=line("heads", 20))

Colours are from the Okabe-Ito palette, which stays distinguishable with the common colour-vision deficiencies.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodStyle:
    label: str  # how figures and legends name the method
    colour: str  # hex RGB
    symbol: str  # plotly marker symbol (filled form)


METHOD_STYLES = {
    "dense": MethodStyle("dense model", "#000000", "circle"),
    "weight": MethodStyle("weight pruning", "#0072B2", "pentagon"),
    "heads": MethodStyle("head pruning", "#E69F00", "square"),
    "ffn": MethodStyle("FFN pruning", "#009E73", "diamond"),
    "distill": MethodStyle("distillation", "#D55E00", "triangle-up"),
    "truncate": MethodStyle("truncation", "#CC79A7", "triangle-down"),
    "combined": MethodStyle("combined recipe", "#56B4E9", "star"),
    "random-init": MethodStyle("random-init twin", "#999999", "x"),
    "fbank": MethodStyle("log-Mel features", "#999999", "cross"),
    "zoo": MethodStyle("published model", "#7F7F7F", "hexagon"),
}
FALLBACK = MethodStyle("other", "#444444", "octagon")  # a method this table does not know yet
VARIANT_SYMBOLS = ("bowtie", "hourglass", "hexagram", "star-square")  # ablation variants, shapes no method uses

FRAME_RATE_DASH = {20: "solid", 10: "dot"}
OPEN_RATES = (10,)  # frame rates drawn with open markers
MARKER_SIZE = 9
REFERENCE_COLOUR = "#999999"  # reference lines (dense model, random-init twin, log-Mel) drawn as annotations


def style(method: str) -> MethodStyle:
    return METHOD_STYLES.get(method, FALLBACK)


def label(method: str, frame_ms: int | None = None) -> str:
    """'head pruning, 20 ms' (or just 'head pruning' without a frame rate)."""
    name = style(method).label
    return name if frame_ms is None else f"{name}, {int(frame_ms)} ms"


def marker(method: str, frame_ms: int | None = None, size: int = MARKER_SIZE, symbol: str | None = None) -> dict:
    """Plotly marker of a method at a frame rate: the method's colour and shape, open at 10 ms; `symbol` replaces
    the shape (an ablation variant's)."""
    shape = symbol or style(method).symbol
    if frame_ms is not None and int(frame_ms) in OPEN_RATES:
        shape += "-open"
    return dict(symbol=shape, size=size, color=style(method).colour, line=dict(width=1.5, color=style(method).colour))


def line(method: str, frame_ms: int | None = None, width: float = 1.5) -> dict:
    """Plotly line of a method at a frame rate: the method's colour, dotted at 10 ms."""
    dash = FRAME_RATE_DASH.get(int(frame_ms), "solid") if frame_ms is not None else "solid"
    return dict(color=style(method).colour, dash=dash, width=width)


def legend_below(fig, y: float = -0.15) -> None:
    """A horizontal legend under the plot (`y` in plot-height fractions): it never scrolls, never covers a panel."""
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=y, xanchor="left", x=0))
