"""The report's figures, drawn with matplotlib's Agg backend into PNG bytes.

matplotlib is imported here only, and only when a figure is drawn, so that the rest of cmalign
works without it. No global pyplot state is touched, and a PNG holds no timestamp or version: the
same inputs give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from ..errors import CmalignError
from ..evaluation.metrics import Calibration
from .stats import Heatmap, LabelRow

NEEDS_MATPLOTLIB = "cmalign report needs matplotlib: pip install 'cmalign[report]'"
NUMBER_FROM = 5  # a heatmap cell prints its percentage from this share up; below, the colour says enough


def matplotlib_classes():
    """The Figure class and the Agg canvas, imported here so that cmalign needs matplotlib only for reports."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CmalignError(NEEDS_MATPLOTLIB) from None
    return Figure, FigureCanvasAgg


def _png(figure) -> bytes:
    _, canvas = matplotlib_classes()
    canvas(figure)  # the Agg backend for this figure only: no global pyplot state is touched
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def heatmap_png(data: Heatmap) -> bytes:
    Figure, _ = matplotlib_classes()
    rows, cols = data.shares.shape
    percent = 100 * data.shares  # the cells print percentages, so the colour bar is in % too
    figure = Figure(figsize=(max(6.0, 2.8 + 0.4 * cols), max(3.0, 1.8 + 0.34 * rows)))
    ax = figure.add_subplot()
    image = ax.imshow(percent, cmap="Blues", vmin=0.0, vmax=100.0, aspect="auto")
    for i, j in zip(*np.nonzero(percent >= NUMBER_FROM)):  # smaller shares: colour only, no number
        ax.text(j, i, f"{percent[i, j]:.0f}", ha="center", va="center", fontsize=9, parse_math=False,
                color="white" if percent[i, j] > 60 else "black")
    for i, row in enumerate(data.rows):  # outline the cell where the user meant what the annotator said
        if row in data.columns:
            j = data.columns.index(row)
            ax.add_patch(_rectangle((j - 0.5, i - 0.5)))
    ax.set_xticks(range(cols), [short(c, 28) for c in data.columns], rotation=60, ha="right", fontsize=8,
                  parse_math=False)
    ax.set_yticks(range(rows), [short(r) + (" †" if out else "") for r, out in zip(data.rows, data.out_of_set)],
                  fontsize=8, parse_math=False)
    for tick, out in zip(ax.get_yticklabels(), data.out_of_set):
        if out:
            tick.set_color("#b03030")
    ax.set_xlabel("what the user meant")
    ax.set_ylabel("the annotator's answer")
    figure.colorbar(image, ax=ax, fraction=0.03, pad=0.02, label="% of the answer's samples")
    return _png(figure)


def _rectangle(corner: tuple[float, float]):
    from matplotlib.patches import Rectangle

    return Rectangle(corner, 1, 1, fill=False, edgecolor="#e07b00", linewidth=1.2)


def reliability_png(reliability: Calibration, source: str) -> bytes:
    Figure, _ = matplotlib_classes()
    figure = Figure(figsize=(5.0, 4.2))
    ax = figure.add_subplot()
    used = reliability.count > 0
    edges = np.linspace(0.0, 1.0, len(reliability.count) + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    accuracy = np.divide(reliability.correct, reliability.count, out=np.zeros(len(centres)), where=used)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    ax.bar(centres[used], accuracy[used], width=1 / len(centres), edgecolor="#1f4e79", color="#6fa8dc",
           label="accuracy in the bin")
    mean_confidence = reliability.confidence[used] / reliability.count[used]
    ax.plot(mean_confidence, accuracy[used], "o", color="#e07b00", markersize=4, label="mean confidence")
    for x, n in zip(centres[used], reliability.count[used]):  # a bin of 2 items says little: show its size
        ax.text(x, 0.015, str(n), ha="center", fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{source}: ECE {reliability.ece:.3f} on {reliability.n} items", fontsize=9, parse_math=False)
    ax.legend(loc="upper left", fontsize=7, framealpha=0.9)
    return _png(figure)


def weakest_png(rows: Sequence[LabelRow], held_out: bool) -> bytes:
    Figure, _ = matplotlib_classes()
    figure = Figure(figsize=(6.5, max(2.5, 0.8 + 0.3 * len(rows))))
    ax = figure.add_subplot()
    if held_out:
        values = [r.held_out_accuracy for r in rows]
        notes = [f"{r.held_out_correct}/{r.held_out}" for r in rows]
    else:
        values = [r.annotator_agreed / r.samples for r in rows]
        notes = [f"{r.annotator_agreed}/{r.samples}" for r in rows]
    y = np.arange(len(rows))
    ax.barh(y, values, color="#6fa8dc", edgecolor="#1f4e79")
    for i, (value, note) in enumerate(zip(values, notes)):  # beside the bar, in the room kept past 1.0
        ax.text(value + 0.01, i, note, va="center", fontsize=8)
    ax.set_yticks(y, [short(r.label) for r in rows], fontsize=8, parse_math=False)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)  # a bar of 1.0 stays inside the axes, its count beside it
    ax.set_xticks(np.linspace(0.0, 1.0, 6))
    ax.set_xlabel("out-of-fold accuracy (review)" if held_out else "the annotator's agreement with the user (bank)")
    return _png(figure)


def confidence_png(histogram: np.ndarray, split: bool) -> bytes:
    """Items per confidence bin; with ``split``, the kept labels below the changed ones."""
    Figure, _ = matplotlib_classes()
    figure = Figure(figsize=(6.5, 3.2))
    ax = figure.add_subplot()
    edges = np.linspace(0.0, 1.0, histogram.shape[1] + 1)
    width = edges[1] - edges[0]
    ax.bar(edges[:-1], histogram[1], width=width, align="edge", color="#6fa8dc",
           label="label kept (= the annotator's)" if split else "items")
    if split:
        ax.bar(edges[:-1], histogram[0], width=width, align="edge", bottom=histogram[1], color="#e07b00",
               label="label changed")
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence of the label")
    ax.set_ylabel("items")
    ax.legend(fontsize=7)
    return _png(figure)
