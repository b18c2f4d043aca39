"""The commands as library calls: each job takes one typed options object and returns its result.

``cmalign fit`` is :func:`fit` (:class:`FitOptions`), ``annotate`` is :func:`annotate`, and so on; the
command line only parses its flags into these options, calls the job and prints the result. A
job says what it is doing through a :class:`~cmalign.progress.Progress` (silent by default), and
every error it raises is a :class:`~cmalign.errors.CmalignError` naming the option by its parameter.

>>> from cmalign.jobs import FitOptions, fit
>>> result = fit(FitOptions(["prefs.jsonl"], "bank.json"))   # doctest: +SKIP
"""

from .annotate import AnnotateOptions, AnnotateResult, annotate
from .bench import BenchOptions, bench
from .common import Model, ModelOptions
from .fit import FitOptions, FitResult, fit
from .loop import (ExportOptions, ReportOptions, Reviewed, ReviewOptions, Selected, SelectOptions, export_file, report,
                   review, select_items)

__all__ = ["AnnotateOptions", "AnnotateResult", "BenchOptions", "ExportOptions", "FitOptions", "FitResult", "Model",
           "ModelOptions", "ReportOptions", "ReviewOptions", "Reviewed", "SelectOptions", "Selected", "annotate",
           "bench", "export_file", "fit", "report", "review", "select_items"]
