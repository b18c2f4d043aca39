"""``cmalign report``: one HTML page on a bank, a labelling run, a review and a bench, for a person.

One module per layer: :mod:`.readers` reads and checks the files (a labelled file of a million
lines is streamed into counts and histograms, none of its lines kept); :mod:`.stats` turns them
into tables; :mod:`.figures` draws the PNGs with matplotlib, imported only there and only when a
page is built, so the rest of cmalign works without it; :mod:`.page` renders the page from an
autoescaped Jinja2 template. Every figure is written as a PNG beside the page and embedded in it
as a data URI: the page opens offline, with no request for anything. Every text from the data is
HTML-escaped, and a Content-Security-Policy lets only the page's own script run, so a user text
holding ``<script>`` is shown, never executed.
"""

from .figures import NEEDS_MATPLOTLIB
from .page import FIGURES, SECTIONS, TABLE_ROWS, figures_folder, render, write_report
from .readers import BenchRun, LabelledSummary, ReviewSummary, read_bench, read_labelled, read_review
from .stats import WEAKEST, Confusion, Heatmap, LabelRow, confusions, heatmap, label_rows, weakest_labels

__all__ = ["FIGURES", "NEEDS_MATPLOTLIB", "SECTIONS", "TABLE_ROWS", "WEAKEST", "BenchRun", "Confusion", "Heatmap",
           "LabelRow", "LabelledSummary", "ReviewSummary", "confusions", "figures_folder", "heatmap", "label_rows",
           "read_bench", "read_labelled", "read_review", "render", "weakest_labels", "write_report"]
