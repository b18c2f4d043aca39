"""The page: what the readers and the tables give, drawn and written into one self-contained HTML file.

The markup is the Jinja2 template ``templates/report.html.j2``, rendered with autoescape on, so every
text from the data is escaped; the stylesheet and the script are the files in ``static/``, inlined
as they are, and the Content-Security-Policy lets only that script run (by its SHA-256). Figures
are PNGs written beside the page and embedded in it as data URIs: the page asks for nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import CmalignError, DataError, shown
from ..evaluation.metrics import Calibration
from ..files import check_outputs, write_atomically
from ..method.bank import MemoryBank
from .figures import (NUMBER_FROM, confidence_png, heatmap_png, matplotlib_classes, reliability_png, short,
                      weakest_png)
from .readers import (HISTOGRAM_BINS, BenchRun, LabelledSummary, ReviewSummary, read_bench, read_labelled,
                      read_review)
from .stats import confusions, heatmap, label_rows, weakest_labels

NEEDS_JINJA2 = "cmalign report needs Jinja2: pip install 'cmalign[report]'"
FIGURES = ("heatmap", "reliability", "weakest-labels", "confidence")  # the PNG names, without .png
SECTIONS = {
    "summary": "Summary",
    "discrepancies": "Where the annotator and the user part ways",
    "reliability": "Reliability",
    "labels": "Per label: accuracy and coverage",
    "confidence": "Confidence of the labelled items",
    "review": "What review would send to a person",
}
TOP_CONFUSIONS = 25
TABLE_ROWS = 30  # the per-label table is shown whole up to this many labels; beyond, it scrolls in a box


def _finite(value: Any) -> Any:
    """Every value the template writes: a NaN or an infinity never reaches the page."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} on the report's page: every number shown must be finite")
    return value


def _fixed(value: float, digits: int) -> str:
    return f"{_finite(float(value)):.{digits}f}"


def _pct(part: float, whole: float) -> str:
    return f"{_fixed(100 * part / whole, 1)}%" if whole else "—"


@functools.cache
def _environment():
    try:
        import jinja2
    except ImportError:
        raise CmalignError(NEEDS_JINJA2) from None
    environment = jinja2.Environment(loader=jinja2.PackageLoader(__package__, "templates"), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                                     finalize=_finite)

    @jinja2.pass_context
    def setting(context, name: str) -> str:
        return shown(f"{{={name}}}", context["names"])

    environment.filters.update(fixed=_fixed, pct=_pct, short=short, setting=setting)
    return environment


def _inlined(name: str):
    """A file of ``static/``, to be inlined in the page as it is: the page's own, never the data's."""
    from markupsafe import Markup  # Jinja2's own

    text = resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")
    if "</" in text:
        raise ValueError(f"static/{name} holds '</': inlined, it would end its element early")
    return Markup(text)


def _data_uri(png: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}"


def _reliability(review: ReviewSummary | None, labelled: LabelledSummary | None,
                 gold_field: str) -> tuple[Calibration | None, str | None]:
    """The reliability diagram's bins and what they are drawn from: the review's out-of-fold
    predictions, else the labelled items that carry a gold label; (None, None) without either."""
    if review is not None and review.preference:
        return review.reliability(), "out-of-fold, preference samples (review)"
    if labelled is not None and labelled.reliability.n:
        return labelled.reliability, f"labelled items against their {gold_field!r} field"
    return None, None


def render(bank: MemoryBank, bank_path: Path, *, labelled: LabelledSummary | None = None,
           review: ReviewSummary | None = None, bench: list[BenchRun] | None = None,
           gold_field: str = "gold", names: Mapping[str, str] | None = None) -> tuple[str, dict[str, bytes]]:
    """The page (HTML text) and its figures (PNG bytes by name in :data:`FIGURES`).

    A setting the page names (the input that gives a missing section) is spelled as ``names`` has
    it (the command line passes its flags), else as the parameter, as :meth:`CmalignError.render`.
    """
    figures: dict[str, bytes] = {}
    data = heatmap(bank)
    if data is not None:
        figures["heatmap"] = heatmap_png(data)
    reliability, source = _reliability(review, labelled, gold_field)
    if reliability is not None:
        figures["reliability"] = reliability_png(reliability, source)
    rows = label_rows(bank, review, labelled)
    weakest = weakest_labels(rows, held_out=review is not None)
    if weakest:
        figures["weakest-labels"] = weakest_png(weakest, held_out=review is not None)
    confident = 0 if labelled is None else int(labelled.histogram.sum())
    if confident:
        figures["confidence"] = confidence_png(labelled.histogram, split=labelled.compared > 0)
    script = _inlined("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    page = _environment().get_template("report.html.j2").render(
        names=names, name=bank_path.name, version=__version__, digest=bank.digest(), titles=SECTIONS,
        policy=f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'",
        style=_inlined("report.css"), script=script, figures={k: _data_uri(png) for k, png in figures.items()},
        bank=bank, labelled=labelled, review=review, bench=bench,
        annotator_right=sum(dict(e.counts).get(e.response, 0) for e in bank.entries.values()),
        review_right=None if review is None else sum(r.suggested == r.label for r in review.preference),
        bench_methods=[] if bench is None else list(dict.fromkeys(m for run in bench for m in run.accuracy)),
        heatmap=data, confusions=[] if data is None else confusions(bank), number_from=NUMBER_FROM,
        top_confusions=TOP_CONFUSIONS, reliability=reliability, reliability_source=source,
        gold_field_repr=repr(gold_field), label_rows=rows, weakest=weakest, table_rows=TABLE_ROWS,
        confident=confident,
        below_half=0 if labelled is None else int(labelled.histogram[:, :HISTOGRAM_BINS // 2].sum()),
        actions=", ".join(f"{a} {n}" for a, n in labelled.actions.most_common()) or "none"
        if labelled is not None else "none")
    return page, figures


def figures_folder(output: str | Path) -> Path:
    """Where the PNGs go: ``report_files/`` beside ``report.html``."""
    output = Path(output)
    return output.with_name(f"{output.stem}_files")


def write_report(output: str | Path, bank_path: str | Path, *, labelled: str | Path | None = None,
                 review: str | Path | None = None, bench: str | Path | None = None, gold_field: str = "gold",
                 overwrite: bool = False, names: Mapping[str, str] | None = None) -> list[Path]:
    """Read the inputs, write the figures into :func:`figures_folder` and the page to ``output``
    (atomically); the paths written. Nothing there is replaced without ``overwrite``. ``names``:
    as :func:`render`."""
    output, folder = Path(output), figures_folder(output)
    targets = [folder / f"{name}.png" for name in FIGURES]
    if folder.exists() and not folder.is_dir():
        raise DataError("is not a folder; the report's figures go there", folder)
    # a bad output path, a page or figure there already, or an input as the output: before any file is read
    check_outputs([output, *(t for t in targets if folder.is_dir())], [bank_path, labelled, review, bench],
                  overwrite=overwrite)
    matplotlib_classes()
    _environment()
    bank = MemoryBank.load(bank_path)
    summary = None if labelled is None else read_labelled(labelled, bank.labels, gold_field=gold_field)
    ranked = None if review is None else read_review(review, bank)
    runs = None if bench is None else read_bench(bench)
    page, figures = render(bank, Path(bank_path), labelled=summary, review=ranked, bench=runs, gold_field=gold_field,
                           names=names)
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
