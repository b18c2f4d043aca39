"""``cmalign report``: one HTML page on a bank, a labelling run, a review and a bench, for a person.

What is read and what is drawn are kept apart: the readers and the tables are pure functions over
the files (a labelled file of a million lines is streamed into counts and histograms, none of its
lines kept); the figures are drawn with matplotlib, imported only here and only when a page is
built, so the rest of cmalign works without it. Every figure is written as a PNG beside the page
and embedded in it as a data URI: the page opens offline, with no request for anything. Every text
from the data is HTML-escaped, and a Content-Security-Policy lets only the page's own script run,
so a user text holding ``<script>`` is shown, never executed.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import html
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .data.io import json_lines
from .errors import CmalignError, DataError
from .files import writable_target, write_atomically
from .labels import LabelSet
from .method.bank import MemoryBank

NEEDS_MATPLOTLIB = "cmalign report needs matplotlib: pip install 'cmalign[report]'"
FIGURES = ("heatmap", "reliability", "weakest-labels", "confidence")  # the PNG names, without .png
HEATMAP_ROWS, HEATMAP_COLUMNS = 25, 30  # readable at 150 labels; the rest is one summary row/column
NUMBER_FROM = 5  # a heatmap cell prints its percentage from this share up; below, the colour says enough
TOP_CONFUSIONS, TOP_REVIEW, WEAKEST = 25, 20, 10
TABLE_ROWS = 30  # the per-label table is shown whole up to this many labels; beyond, it scrolls in a box
BINS = 15  # reliability bins: the same equal-width bins as evaluation.metrics.expected_calibration_error
HISTOGRAM_BINS = 50


# -- reading -------------------------------------------------------------------------------------



def _probability(value: Any, name: str, path: Path, line: int, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise DataError(f"{name!r} must be a number from 0 to 1, not {value!r}", path, line)
    return float(value)


def _label(value: Any, name: str, labels: LabelSet, path: Path, line: int) -> str:
    if not isinstance(value, str) or value not in labels:
        raise DataError(f"{name} {value!r} is not one of the bank's labels (a file for another bank?)", path, line)
    return value


class Reliability:
    """Confidence against correctness in :data:`BINS` equal-width bins, added one item at a time.

    ``ece`` is the expected calibration error: the mean over bins, weighted by their size, of
    |accuracy - mean confidence|, as :func:`cmalign.evaluation.metrics.expected_calibration_error`.
    """

    def __init__(self, bins: int = BINS) -> None:
        self.count = np.zeros(bins, dtype=np.int64)
        self.confidence = np.zeros(bins)
        self.correct = np.zeros(bins, dtype=np.int64)

    def add(self, confidence: float, correct: bool) -> None:
        # bins are (low, high]; a confidence of exactly 0 joins the first
        b = min(len(self.count) - 1, max(0, math.ceil(confidence * len(self.count)) - 1))
        self.count[b] += 1
        self.confidence[b] += confidence
        self.correct[b] += bool(correct)

    @property
    def n(self) -> int:
        return int(self.count.sum())

    @property
    def accuracy(self) -> float:
        return float(self.correct.sum() / self.n)

    @property
    def ece(self) -> float:
        used = self.count > 0
        gap = np.abs(self.correct[used] / self.count[used] - self.confidence[used] / self.count[used])
        return float((self.count[used] / self.n * gap).sum())


@dataclass
class LabelledSummary:
    """What a labelled file (``cmalign annotate``'s output) says, as counts only.

    ``compared``: items with the annotator's label; ``changed``: those whose label differs from it.
    ``histogram``: items per confidence bin, split into (changed, kept); ``reliability``: against
    the gold field, for items that have one and a confidence.
    """

    n: int = 0
    methods: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)
    per_label: Counter = field(default_factory=Counter)
    compared: int = 0
    changed: int = 0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros((2, HISTOGRAM_BINS), dtype=np.int64))
    reliability: Reliability = field(default_factory=Reliability)
    gold: int = 0
    gold_correct: int = 0


def read_labelled(path: str | Path, labels: LabelSet, *, gold_field: str = "gold") -> LabelledSummary:
    """Stream a labelled JSONL file into a :class:`LabelledSummary` (memory does not grow with it)."""
    path, summary = Path(path), LabelledSummary()
    for line, row in json_lines(path):
        label = row.get("label")
        if label is not None:
            _label(label, "label", labels, path, line)
        confidence = _probability(row.get("confidence"), "confidence", path, line, optional=True)
        summary.n += 1
        summary.methods[str(row.get("method", "(none)"))] += 1
        summary.per_label[label] += 1
        if row.get("action") is not None:
            summary.actions[str(row["action"])] += 1
        changed = None
        if "annotator_label" in row:
            changed = label != row["annotator_label"]
            summary.compared += 1
            summary.changed += changed
        if confidence is not None:
            b = min(HISTOGRAM_BINS - 1, int(confidence * HISTOGRAM_BINS))
            summary.histogram[0 if changed else 1, b] += 1
        gold = row.get(gold_field)
        if isinstance(gold, str):
            right = label is not None and labels.canonical(gold) == label
            summary.gold += 1
            summary.gold_correct += right
            if confidence is not None:
                summary.reliability.add(confidence, right)
    if summary.n == 0:
        raise DataError("no labelled item in the file", path)
    return summary


@dataclass(frozen=True)
class ReviewRow:
    """One line of a review file (``cmalign review``), most worth a look first."""

    rank: int
    kind: str  # "preference" (a preference sample, held out) or "labelled" (an item the method labelled)
    line: int
    text: str
    label: str  # the user's label (preference) or the method's (labelled)
    suggested: str  # the out-of-fold prediction
    confidence: float  # the method's probability of ``suggested``
    given_probability: float | None  # out-of-fold probability of the user's label; preference rows only
    reason: str


@dataclass(frozen=True)
class ReviewSummary:
    preference: tuple[ReviewRow, ...]  # every preference sample: the held-out estimate
    top: tuple[ReviewRow, ...]  # the first rows by rank
    n_labelled: int

    def reliability(self) -> Reliability:
        reliability = Reliability()
        for row in self.preference:
            reliability.add(row.confidence, row.suggested == row.label)
        return reliability


def read_review(path: str | Path, bank: MemoryBank, *, top: int = TOP_REVIEW) -> ReviewSummary:
    """Read a review file, checking that it was written for ``bank`` (its preference rows are the
    bank's samples). Keeps the preference rows (as many as the bank has) and the ``top`` by rank."""
    path = Path(path)
    preference, n_labelled = [], 0
    best: list[tuple[int, int, ReviewRow]] = []  # a heap of the ``top`` lowest ranks, the highest on top
    for line, row in json_lines(path):
        try:
            rank, kind, number, text, reason = row["rank"], row["kind"], row["line"], row["text"], row["reason"]
            label, suggested = row["label"], row["suggested"]
            confidence, given = row["confidence"], row.get("given_probability")
        except KeyError as exc:
            raise DataError(f"no {exc.args[0]!r} field (a review line has rank, kind, line, text, label, "
                            "suggested, confidence, given_probability, reason)", path, line) from None
        if kind not in ("preference", "labelled"):
            raise DataError(f"kind {kind!r}: expected 'preference' or 'labelled'", path, line)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (rank, number)):
            raise DataError("rank and line must be whole numbers", path, line)
        if not isinstance(text, str) or not isinstance(reason, str):
            raise DataError("text and reason must be strings", path, line)
        record = ReviewRow(rank, kind, number, text, _label(label, "label", bank.labels, path, line),
                           _label(suggested, "suggested", bank.labels, path, line),
                           _probability(confidence, "confidence", path, line),
                           _probability(given, "given_probability", path, line, optional=True), reason)
        if kind == "preference":
            preference.append(record)
        else:
            n_labelled += 1
        heapq.heappush(best, (-rank, -line, record))
        if len(best) > top:
            heapq.heappop(best)
    if len(preference) != bank.n_samples or (bank.samples and Counter((r.text, r.label) for r in preference)
                                             != Counter((s.text, s.label) for s in bank.samples)):
        raise DataError(f"its {len(preference)} preference rows are not the bank's {bank.n_samples} preference "
                        "samples: a review of another bank? (cmalign review --bank on this bank)", path)
    return ReviewSummary(tuple(preference), tuple(r for *_, r in sorted(best, reverse=True)), n_labelled)


@dataclass(frozen=True)
class BenchRun:
    """One line of ``cmalign bench --json``: a (dataset, budget, seed) and each method's accuracy."""

    dataset: str
    budget: str
    seed: int
    n_preference: int
    n_eval: int
    accuracy: dict[str, float]


def read_bench(path: str | Path) -> list[BenchRun]:
    path, runs = Path(path), []
    for line, row in json_lines(path):
        try:
            accuracy = {name: float(m["accuracy"]) for name, m in row["methods"].items()}
            runs.append(BenchRun(str(row["dataset"]), str(row["budget"]), int(row["seed"]), int(row["n_preference"]),
                                 int(row["n_eval"]), accuracy))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"not a line of 'cmalign bench --json' ({type(exc).__name__}: {exc})", path, line) from None
    if not runs:
        raise DataError("no bench run in the file", path)
    return runs


# -- what the bank says ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Confusion:
    """The annotator said ``answer`` and the user meant ``label``, ``count`` times (``share`` of ``answer``)."""

    answer: str
    label: str
    count: int
    share: float
    in_label_set: bool


def confusions(bank: MemoryBank) -> list[Confusion]:
    """Every (answer, label) pair of the bank where the two differ, largest count first."""
    pairs = [Confusion(e.response, label, n, n / e.total, e.in_label_set)
             for e in bank.entries.values() for label, n in e.counts if label != e.response]
    return sorted(pairs, key=lambda c: (-c.count, -c.share, c.answer, c.label))


@dataclass(frozen=True)
class Heatmap:
    """Row-normalised shares, answer keys (rows) x the labels the user meant (columns).

    Column ``i`` is row ``i``'s own label whenever that row is a label, so the cells where the user
    meant what the annotator said form the diagonal. The last row sums the answers not shown, the
    last column the labels not shown, when there are any.
    """

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    shares: np.ndarray
    out_of_set: tuple[bool, ...]
    other_rows: int
    other_columns: int


def heatmap(bank: MemoryBank, max_rows: int = HEATMAP_ROWS, max_columns: int = HEATMAP_COLUMNS) -> Heatmap | None:
    """The answers with the most samples the user labelled otherwise, and where those went; None
    when the annotator's answer was always the user's label.

    The columns shown are the labels that got the most of the shown rows' samples, except that each
    shown row's own label is always one (while there is room) so that the diagonal is complete.
    They are placed on the diagonal first; a row that is not a label, and the columns after the
    last row, take the other chosen labels by mass.
    """
    def off(entry) -> int:
        return entry.total - dict(entry.counts).get(entry.response, 0)

    confused = sorted((e for e in bank.entries.values() if off(e)), key=lambda e: (-off(e), -e.total, e.response))
    if not confused:
        return None
    shown, rest = confused[:max_rows], confused[max_rows:]
    mass: Counter[str] = Counter()
    for entry in shown:  # ties in mass go to the label a higher row reaches first (sorted is stable)
        if entry.in_label_set:
            mass[entry.response] += 0
        mass.update(dict(entry.counts))
    by_mass = [label for label, _ in sorted(mass.items(), key=lambda kv: -kv[1])]
    own = [e.response for e in shown if e.in_label_set][:max_columns]
    own_set = set(own)
    others = [label for label in by_mass if label not in own_set][:max_columns - len(own)]
    fill = iter(others)
    columns = []
    for entry in shown:
        label = entry.response if entry.response in own_set else next(fill, None)
        if label is not None:
            columns.append(label)
    columns.extend(fill)
    index = {label: j for j, label in enumerate(columns)}
    other_columns = len(bank.labels) - len(columns)
    width = len(columns) + (other_columns > 0)
    counts = np.zeros((len(shown) + bool(rest), width))
    for i, entry in enumerate(shown):
        for label, n in entry.counts:
            counts[i, index.get(label, width - 1)] += n
    for entry in rest:
        for label, n in entry.counts:
            counts[-1, index.get(label, width - 1)] += n
    rows = [e.response for e in shown] + ([f"({len(rest)} other answers)"] if rest else [])
    if other_columns:
        columns.append(f"({other_columns} other labels)")
    return Heatmap(tuple(rows), tuple(columns), counts / counts.sum(axis=1, keepdims=True),
                   tuple(not e.in_label_set for e in shown) + ((False,) if rest else ()), len(rest), other_columns)


@dataclass(frozen=True)
class LabelRow:
    label: str
    samples: int  # preference samples the user gave this label
    annotator_agreed: int  # of those, how many the annotator answered with the label itself
    held_out: int  # preference rows of the review with this label
    held_out_correct: int  # of those, predicted right out of fold
    labelled: int | None  # labelled items that got it (None: no labelled file)

    @property
    def held_out_accuracy(self) -> float | None:
        return self.held_out_correct / self.held_out if self.held_out else None


def label_rows(bank: MemoryBank, review: ReviewSummary | None, labelled: LabelledSummary | None) -> list[LabelRow]:
    """One row per label, weakest first: lowest out-of-fold accuracy (with a review), else the
    annotator's agreement with the user in the bank; labels with no preference sample last."""
    samples, agreed = Counter(), Counter()
    for entry in bank.entries.values():
        for label, n in entry.counts:
            samples[label] += n
            agreed[label] += n if label == entry.response else 0
    held, right = Counter(), Counter()
    for row in review.preference if review else ():
        held[row.label] += 1
        right[row.label] += row.suggested == row.label
    rows = [LabelRow(label, samples[label], agreed[label], held[label], right[label],
                     None if labelled is None else labelled.per_label[label]) for label in bank.labels]

    def weakness(r: LabelRow) -> tuple:
        score = r.held_out_accuracy if review else (r.annotator_agreed / r.samples if r.samples else None)
        return (score is None, score if score is not None else 0.0, -r.samples, bank.labels.index(r.label))

    return sorted(rows, key=weakness)


def weakest_labels(rows: Sequence[LabelRow], held_out: bool, n: int = WEAKEST) -> list[LabelRow]:
    """The first ``n`` of :func:`label_rows` that have a score: held-out rows (``held_out``) or samples."""
    return [r for r in rows if (r.held_out if held_out else r.samples)][:n]


# -- figures ---------------------------------------------------------------------------------------

def _matplotlib():
    """The Figure class and the Agg canvas, imported here so that cmalign needs matplotlib only for reports."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CmalignError(NEEDS_MATPLOTLIB) from None
    return Figure, FigureCanvasAgg


def _png(figure) -> bytes:
    _, canvas = _matplotlib()
    canvas(figure)  # the Agg backend for this figure only: no global pyplot state is touched
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def heatmap_png(data: Heatmap) -> bytes:
    Figure, _ = _matplotlib()
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
    ax.set_xticks(range(cols), [_short(c, 28) for c in data.columns], rotation=60, ha="right", fontsize=8,
                  parse_math=False)
    ax.set_yticks(range(rows), [_short(r) + (" †" if out else "") for r, out in zip(data.rows, data.out_of_set)],
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


def reliability_png(reliability: Reliability, source: str) -> bytes:
    Figure, _ = _matplotlib()
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
    Figure, _ = _matplotlib()
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
    ax.set_yticks(y, [_short(r.label) for r in rows], fontsize=8, parse_math=False)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)  # a bar of 1.0 stays inside the axes, its count beside it
    ax.set_xticks(np.linspace(0.0, 1.0, 6))
    ax.set_xlabel("out-of-fold accuracy (review)" if held_out else "the annotator's agreement with the user (bank)")
    return _png(figure)


def confidence_png(histogram: np.ndarray, split: bool) -> bytes:
    """Items per confidence bin; with ``split``, the kept labels below the changed ones."""
    Figure, _ = _matplotlib()
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


# -- the page --------------------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], *, sortable: bool = False, cls: str = "") -> str:
    """An HTML table; a cell is a value or (shown, sort key); every text escaped."""
    def cell(value: Any) -> str:
        if isinstance(value, tuple):
            shown, key = value
            return f'<td data-sort="{_e(key)}">{_e(shown)}</td>'
        return f"<td>{_e(value)}</td>"

    classes = " ".join(c for c in (cls, "sortable" if sortable else "") if c)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    title = ' title="click a column to sort"' if sortable else ""
    return (f'<table class="{classes}"{title}><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head)
            + f"</tr></thead><tbody>{body}</tbody></table>")


def _figure(png: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{_e(alt)}">'


def _missing(sentence: str) -> str:
    return f'<p class="missing">{_e(sentence)}</p>'


SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(th => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const key = row => {
    const cell = row.cells[th.cellIndex], value = cell.dataset.sort ?? cell.textContent, number = Number(value);
    return value !== "" && !Number.isNaN(number) ? number : value;
  };
  const up = th.dataset.order !== "up";
  th.closest("tr").querySelectorAll("th").forEach(other => delete other.dataset.order);
  th.dataset.order = up ? "up" : "down";
  const rows = [...body.rows].sort((a, b) => {
    const x = key(a), y = key(b);
    return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
  });
  body.append(...rows);
}));
"""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.6rem 0; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
td { max-width: 32rem; overflow-wrap: break-word; }
/* the review's text (4th) and reason (9th) wrap between words; its other cells are one short value each */
table.review td { white-space: nowrap; }
table.review td:nth-child(4), table.review td:nth-child(9) { white-space: normal; }
th { background: #f3f3f3; }
table.sortable th { cursor: pointer; }
table.sortable th::after { content: " \\2195"; color: #999; }
th[data-order="up"]::after { content: " \\2191"; } th[data-order="down"]::after { content: " \\2193"; }
.scroll { max-height: 28rem; overflow: auto; display: inline-block; }
.side { display: flex; gap: 1.5rem; flex-wrap: wrap; align-items: flex-start; }
img { max-width: 100%; height: auto; }
.missing { color: #666; font-style: italic; }
.out { color: #b03030; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; } dt { font-weight: 600; }
"""


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: str


def _summary(bank: MemoryBank, bank_path: Path, labelled: LabelledSummary | None, review: ReviewSummary | None,
             bench: list[BenchRun] | None) -> str:
    annotator_right = sum(dict(e.counts).get(e.response, 0) for e in bank.entries.values())
    facts = [("bank", f"{bank_path.name}: annotator {bank.annotator}, {bank.n_samples} preference samples, "
                      f"{len(bank.labels)} labels" + (f", budget {bank.budget}" if bank.budget else "")),
             ("the bank holds", bank.describe()),
             ("the annotator alone", f"the user's label on {annotator_right} of the {bank.n_samples} preference "
                                     f"samples ({_pct(annotator_right, bank.n_samples)})")]
    if labelled is None:
        facts.append(("labelled items", "no labelled file (--labelled OUT.jsonl from 'cmalign annotate')"))
    else:
        facts.append(("labelled items", f"{labelled.n}, by " + ", ".join(f"{m} ({n})" for m, n in
                                                                        labelled.methods.most_common())))
        facts.append(("label differs from the annotator's",
                      f"{labelled.changed} of {labelled.compared} items ({_pct(labelled.changed, labelled.compared)})"
                      if labelled.compared else "no annotator fields in the file (a baseline method asks none)"))
        if labelled.actions:
            facts.append(("the rule's actions", ", ".join(f"{a} {n}" for a, n in labelled.actions.most_common())))
        if labelled.gold:
            facts.append(("against the gold field", f"{labelled.gold_correct} of {labelled.gold} right "
                                                    f"({_pct(labelled.gold_correct, labelled.gold)})"))
    if review is not None:
        right = sum(r.suggested == r.label for r in review.preference)
        facts.append(("out-of-fold accuracy (review)", f"{right} of {len(review.preference)} preference samples "
                                                       f"({_pct(right, len(review.preference))})"))
    body = "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>"
    if bench is None:
        return body + _missing("No bench results (--bench BENCH.jsonl from 'cmalign bench --json').")
    methods = list(dict.fromkeys(m for run in bench for m in run.accuracy))
    rows = [[r.dataset, r.budget, r.seed, r.n_preference, r.n_eval]
            + [("—", -1) if m not in r.accuracy else (f"{r.accuracy[m]:.3f}", r.accuracy[m]) for m in methods]
            for r in bench]
    return body + "<h3>Bench: accuracy on the evaluation items</h3>" + _table(
        ["dataset", "budget", "seed", "n_pref", "n_eval", *methods], rows, sortable=True)


def _discrepancies(bank: MemoryBank, figures: dict[str, bytes]) -> str:
    data = heatmap(bank)
    if data is None:
        return _missing("The annotator's answer was the user's label for every preference sample: nothing to show.")
    figures["heatmap"] = heatmap_png(data)
    pairs = confusions(bank)
    shown = f"the {len(data.rows) - bool(data.other_rows)} answers with the most samples the user labelled otherwise"
    note = (f"Rows: {shown}" + (f"; the last row sums the {data.other_rows} others" if data.other_rows else "")
            + ". Each row sums to 100 (% of that answer's samples; a cell under "
              f"{NUMBER_FROM}% shows no number); the outlined diagonal is where the user meant what the annotator "
              "said; † marks an answer that is not one of the labels"
            + (f"; the last column sums {data.other_columns} labels not shown." if data.other_columns else "."))
    rows = [[c.answer, c.label, c.count, (f"{100 * c.share:.0f}%", c.share),
             "" if c.in_label_set else "† not a label"] for c in pairs[:TOP_CONFUSIONS]]
    table = _table(["annotator said", "user meant", "times", "share of the answer", "out of set"], rows, sortable=True)
    return (f"<p>{_e(note)}</p><div class=\"side\">{_figure(figures['heatmap'], 'discrepancy heatmap')}"
            f"<div><p>The {min(len(pairs), TOP_CONFUSIONS)} largest of {len(pairs)} confusions:</p>{table}</div></div>")


def _reliability(review: ReviewSummary | None, labelled: LabelledSummary | None, gold_field: str,
                 figures: dict[str, bytes]) -> str:
    if review is not None and review.preference:
        reliability, source = review.reliability(), "out-of-fold, preference samples (review)"
    elif labelled is not None and labelled.reliability.n:
        reliability, source = labelled.reliability, f"labelled items against their {gold_field!r} field"
    else:
        return _missing("No reliability diagram: it needs a review file (--review, from 'cmalign review') or a "
                        f"labelled file whose lines carry a gold label in a {gold_field!r} field (--gold-field).")
    figures["reliability"] = reliability_png(reliability, source)
    return (f"<p>{_e(source)}: accuracy {reliability.accuracy:.3f}, mean confidence "
            f"{reliability.confidence.sum() / reliability.n:.3f}, expected calibration error (ECE, {BINS} bins) "
            f"<strong>{reliability.ece:.3f}</strong> on {reliability.n} items.</p>"
            + _figure(figures["reliability"], "reliability diagram"))


def _labels(bank: MemoryBank, review: ReviewSummary | None, labelled: LabelledSummary | None,
            figures: dict[str, bytes]) -> str:
    rows = label_rows(bank, review, labelled)

    def share(part: int, whole: int) -> tuple[str, float]:
        return (f"{part}/{whole} ({_pct(part, whole)})", part / whole) if whole else ("—", -1)

    def coverage(r: LabelRow) -> tuple[str, float]:
        return ("—", -1) if r.labelled is None else (f"{r.labelled} ({_pct(r.labelled, labelled.n)})", r.labelled)

    table_rows = [[r.label, r.samples, share(r.annotator_agreed, r.samples), share(r.held_out_correct, r.held_out),
                   coverage(r)] for r in rows]
    table = _table(["label", "preference samples", "annotator agreed (bank)", "out-of-fold accuracy (review)",
                    "labelled items"], table_rows, sortable=True)
    weakest = weakest_labels(rows, held_out=review is not None)
    gaps = []
    if review is None:
        gaps.append("no review file, so no out-of-fold accuracy: the weakest labels are those the annotator gets "
                    "wrong most often in the bank")
    if labelled is None:
        gaps.append("no labelled file, so no coverage")
    figure = ""
    if weakest:
        figures["weakest-labels"] = weakest_png(weakest, held_out=review is not None)
        figure = (f"<div><p>The {len(weakest)} weakest labels:</p>"
                  f"{_figure(figures['weakest-labels'], 'the weakest labels')}</div>")
    note = (f"<p>{_e('; '.join(gaps).capitalize() + '.')}</p>" if gaps else "")
    box = ' class="scroll"' if len(rows) > TABLE_ROWS else ""  # a short table is shown whole, never cut
    return note + f'<div class="side"><div{box}>{table}</div>{figure}</div>'


def _confidence(labelled: LabelledSummary | None, figures: dict[str, bytes]) -> str:
    if labelled is None:
        return _missing("No labelled file (--labelled OUT.jsonl from 'cmalign annotate'): no confidences to show.")
    if not labelled.histogram.sum():
        actions = ", ".join(f"{a} {n}" for a, n in labelled.actions.most_common()) or "none"
        return _missing(f"The labelled items carry no confidence (a CM rule gives actions instead: {actions}).")
    figures["confidence"] = confidence_png(labelled.histogram, split=labelled.compared > 0)
    low = int(labelled.histogram[:, :HISTOGRAM_BINS // 2].sum())
    total = int(labelled.histogram.sum())
    return (f"<p>{total} items with a confidence; {low} ({_pct(low, total)}) below 0.5.</p>"
            + _figure(figures["confidence"], "confidence histogram"))


def _review(review: ReviewSummary | None) -> str:
    if review is None:
        return _missing("No review file (--review REVIEW.jsonl from 'cmalign review'): nothing ranked for a person.")
    rows = [[r.rank, r.kind, r.line, _short(r.text, 400), r.label, r.suggested, f"{r.confidence:.3f}",
             "—" if r.given_probability is None else f"{r.given_probability:.3f}", r.reason] for r in review.top]
    return (f"<p>The first {len(rows)} rows of the review ({len(review.preference)} preference samples, "
            f"{review.n_labelled} labelled items in it), most worth a look first:</p>"
            + _table(["rank", "kind", "line", "text", "label", "suggested", "confidence", "given probability",
                      "reason"], rows, cls="review"))


def render(bank: MemoryBank, bank_path: Path, *, labelled: LabelledSummary | None = None,
           review: ReviewSummary | None = None, bench: list[BenchRun] | None = None,
           gold_field: str = "gold") -> tuple[str, dict[str, bytes]]:
    """The page (HTML text) and its figures (PNG bytes by name in :data:`FIGURES`)."""
    figures: dict[str, bytes] = {}
    sections = [
        Section("summary", "Summary", _summary(bank, bank_path, labelled, review, bench)),
        Section("discrepancies", "Where the annotator and the user part ways", _discrepancies(bank, figures)),
        Section("reliability", "Reliability", _reliability(review, labelled, gold_field, figures)),
        Section("labels", "Per label: accuracy and coverage", _labels(bank, review, labelled, figures)),
        Section("confidence", "Confidence of the labelled items", _confidence(labelled, figures)),
        Section("review", "What review would send to a person", _review(review)),
    ]
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    policy = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    nav = " · ".join(f'<a href="#{s.id}">{_e(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.id}"><h2>{_e(s.title)}</h2>{s.body}</section>' for s in sections)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>cmalign report: {_e(bank_path.name)}</title>'
            f"<style>{STYLE}</style></head><body><h1>cmalign report: {_e(bank_path.name)}</h1>"
            f"<p>cmalign {__version__}, bank digest {bank.digest()}. {nav}</p>{body}"
            f"<script>{SCRIPT}</script></body></html>\n")
    return page, figures


def figures_folder(output: str | Path) -> Path:
    """Where the PNGs go: ``report_files/`` beside ``report.html``."""
    output = Path(output)
    return output.with_name(f"{output.stem}_files")


def write_report(output: str | Path, bank_path: str | Path, *, labelled: str | Path | None = None,
                 review: str | Path | None = None, bench: str | Path | None = None, gold_field: str = "gold",
                 overwrite: bool = False) -> list[Path]:
    """Read the inputs, write the figures into :func:`figures_folder` and the page to ``output``
    (atomically); the paths written. Nothing there is replaced without ``overwrite``."""
    output, folder = Path(output), figures_folder(output)
    real = writable_target(output)  # a bad -o fails before any file is read
    targets = [folder / f"{name}.png" for name in FIGURES]
    if not overwrite:
        for path in (real, *targets):
            if path.exists():
                raise DataError("exists already: --overwrite to replace it", path)
    if folder.exists() and not folder.is_dir():
        raise DataError("is not a folder; the report's figures go there", folder)
    _matplotlib()
    bank = MemoryBank.load(bank_path)
    summary = None if labelled is None else read_labelled(labelled, bank.labels, gold_field=gold_field)
    ranked = None if review is None else read_review(review, bank)
    runs = None if bench is None else read_bench(bench)
    page, figures = render(bank, Path(bank_path), labelled=summary, review=ranked, bench=runs, gold_field=gold_field)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot make the folder ({exc.strerror})", folder) from None
    written = []
    for name, target in zip(FIGURES, targets):
        if name in figures:
            write_atomically(target, lambda handle, png=figures[name]: handle.write(png))
            written.append(target)
        else:  # a figure an earlier report had and this one has not: the folder matches the page
            target.unlink(missing_ok=True)
    write_atomically(output, lambda handle: handle.write(page.encode("utf-8")))
    return [output, *written]
