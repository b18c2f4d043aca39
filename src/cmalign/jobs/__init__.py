"""The commands as library calls: each job takes one typed options object and returns its result.

``cmalign fit`` is :func:`fit` (:class:`FitOptions`), ``annotate`` is :func:`annotate`, and so on; the
command line only parses its flags into these options, calls the job and prints the result. A
job says what it is doing through a :class:`~cmalign.progress.Progress` (silent by default), and
every error it raises is a :class:`~cmalign.errors.CmalignError` naming the option by its parameter. A
setting's default and meaning are stated once, where its options class declares it
(:func:`~cmalign.settings.setting`); the flag is made from that.

Examples
--------
Fit a bank on a user's labelled file, then label another file with it, as ``cmalign fit`` and
``cmalign annotate`` do (the embedded annotator; the input's ``id`` is carried into the output):

>>> import json, pathlib, tempfile
>>> from cmalign.jobs import AnnotateOptions, FitOptions, ModelOptions, annotate, fit
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> rows = [("wake me at 7", "alarm"), ("set an alarm for noon", "alarm"), ("play some jazz", "music"),
...         ("next song please", "music"), ("will it rain", "weather"), ("weather tomorrow", "weather")]
>>> _ = (folder / "prefs.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\\n" for t, y in rows))
>>> _ = (folder / "new.jsonl").write_text(json.dumps({"id": 7, "text": "alarm at six"}) + "\\n")
>>> model = ModelOptions(method="cm_remap")
>>> fit(FitOptions([folder / "prefs.jsonl"], folder / "bank.json", model=model)).lines()[0]
'fitted cm_remap on 6 preference samples, 3 labels: ...'
>>> result = annotate(AnnotateOptions(folder / "new.jsonl", folder / "bank.json", folder / "out.jsonl", model=model))
>>> record = json.loads((folder / "out.jsonl").read_text())
>>> record["id"], record["label"]
(7, 'alarm')
"""

from .annotate import AnnotateOptions, AnnotateResult, annotate
from .bench import BenchOptions, bench
from .common import Model, ModelOptions
from .datasets import ExampleFiles, WriteExampleOptions, write_example
from .fit import FitOptions, FitResult, fit
from .loop import (ExportOptions, ReportOptions, Reviewed, ReviewOptions, Selected, SelectOptions, export_file, report,
                   review, select_items)

__all__ = ["AnnotateOptions", "AnnotateResult", "BenchOptions", "ExampleFiles", "ExportOptions", "FitOptions", "FitResult", "Model",
           "ModelOptions", "ReportOptions", "ReviewOptions", "Reviewed", "SelectOptions", "Selected", "WriteExampleOptions",
           "annotate", "bench", "export_file", "fit", "report", "review", "select_items", "write_example"]
