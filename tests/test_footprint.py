"""A fit that cannot finish in this machine's memory is refused before anything is asked; a slow one
is announced with its estimate."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from cmalign import CombinedCM, Labeler
from cmalign.cli import main
from cmalign.errors import CmalignError
from cmalign.method import footprint
from cmalign.method.examples import Swapper, Words
from cmalign.method.transductive import TransductiveCM

N_LABELS = 300  # 300 samples of 300 labels: 29 MB estimated to fit


class Counting(Swapper):
    identity = "counting-swapper"
    asked = 0

    def label_scores(self, texts, labels):
        Counting.asked += len(texts)
        return super().label_scores(texts, labels)


def many_labels(n=N_LABELS):
    texts = [f"request number {i} about topic {i % 7} alarm" if i % 2 else f"rain report {i}" for i in range(n)]
    return texts, [f"topic {i:04d}" for i in range(n)]


def test_the_estimate_grows_with_samples_times_labels():
    small, large = footprint.of_fit(100, 100), footprint.of_fit(1000, 1000)
    assert large.bytes == 100 * small.bytes and large.seconds == pytest.approx(100 * small.seconds)
    assert "GB" in str(footprint.of_fit(5000, 5000)) and "minutes" in str(footprint.of_fit(5000, 5000))


def test_a_fit_too_large_for_the_memory_is_refused_before_the_annotator_is_asked(monkeypatch):
    texts, y = many_labels()
    monkeypatch.setenv("CMALIGN_MEMORY_AVAILABLE", str(20 * 2**20))
    Counting.asked = 0
    for fit in (lambda: Labeler(Counting(), "cm_best", encoder=Words()).fit(texts, y),
                lambda: CombinedCM(Counting(), encoder=Words()).fit(texts, y)):
        with pytest.raises(CmalignError, match=r"300 preference samples of 300 labels needs about .* GB.*cannot "
                                               r"finish here\. Use method cm_remap, knn or logreg"):
            fit()
    assert Counting.asked == 0
    monkeypatch.setenv("CMALIGN_MEMORY_AVAILABLE", str(200 * 2**20))  # enough: it fits, and labels
    model = Labeler(Counting(), "cm_stack", encoder=Words()).fit(texts, y)
    assert Counting.asked == len(texts) and len(model.method_.predict(texts[:3])) == 3


def test_an_adapt_too_large_is_refused_and_a_slow_fit_is_announced(monkeypatch, caplog):
    texts, y = many_labels(60)
    monkeypatch.setattr(footprint, "SLOW", 0.01)
    with caplog.at_level(logging.WARNING, logger="cmalign"):
        model = TransductiveCM(Swapper(), encoder=Words()).fit(texts, y)
    assert "fitting TransductiveCM on 60 preference samples of 60 labels takes about" in caplog.text
    assert "cm_remap, knn or logreg" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cmalign"):
        Labeler(Swapper(), "cm_best", encoder=Words()).fit(texts, y)  # checked twice, said once per process
    assert caplog.text.count("takes about") == 0
    monkeypatch.setenv("CMALIGN_MEMORY_AVAILABLE", str(2**20))
    with pytest.raises(CmalignError, match=r"adapting TransductiveCM to 500 items of 60 labels .* or adapt 0"):
        model.adapt([f"more text {i}" for i in range(500)])
    monkeypatch.setenv("CMALIGN_MEMORY_AVAILABLE", "lots")
    with pytest.raises(CmalignError, match="CMALIGN_MEMORY_AVAILABLE='lots'"):
        footprint.available_memory()


def test_the_command_refuses_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    texts, y = many_labels()
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in zip(texts, y)))
    monkeypatch.setenv("CMALIGN_MEMORY_AVAILABLE", str(20 * 2**20))
    code = main(["fit", str(prefs), "-o", str(tmp_path / "bank.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "loading the model" not in err and "--method cm_remap, knn or logreg" in err[-1], err
    assert err[-1].startswith("cmalign: error: fitting TransductiveCM on 300 preference samples of 300 labels")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefs.jsonl"]
    assert np.isfinite(footprint.available_memory() or 0)
