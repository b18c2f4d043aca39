"""annotate streams: the input is read an item at a time, labelled and written a chunk at a time, and
the encoder's cache holds a working set, not the corpus."""

import json

import numpy as np
import pytest

from cmalign import EmbeddingAnnotator
from cmalign.cli import main
from cmalign.data import Item, iter_items, load_bundled
from cmalign.errors import DataError
from cmalign.labeler import Labeler
from cmalign.output import LabelledOutput


@pytest.fixture(scope="module")
def massive():
    return load_bundled("massive_scenario")


def test_items_are_read_one_at_a_time(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": f"item {n}"}) + "\n" for n in range(1, 50)) + "{broken\n")
    items = iter_items(path)
    assert next(items) == Item("item 1", None, 1)  # read before the bad line at the end is reached
    with pytest.raises(DataError, match=r"in.jsonl:50: not valid JSON"):
        list(items)


def test_a_bad_line_anywhere_fails_before_the_model_loads(capsys, tmp_path, monkeypatch):
    prefs, bank, inp = tmp_path / "prefs.jsonl", tmp_path / "bank.json", tmp_path / "in.jsonl"
    prefs.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                             for t, lab in [("wake me at 7", "alarm"), ("play jazz", "music")] * 3))
    assert main(["fit", str(prefs), "-o", str(bank), "--method", "cm_remap"]) == 0
    inp.write_text("".join(json.dumps({"text": f"item {n}"}) + "\n" for n in range(5000)) + '{"text": ""}\n')
    monkeypatch.setattr("cmalign.jobs.common.default_encoder", lambda *a: pytest.fail("loaded the model"))
    capsys.readouterr()
    assert main(["annotate", str(inp), "--bank", str(bank), "-o", str(tmp_path / "out.jsonl")]) == 2
    assert "in.jsonl:5001: the text field 'text' is empty" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_labels_are_written_while_the_input_is_still_being_read(encoder, massive, tmp_path):
    """A chunk is labelled and on disk before the next chunk of the input is read: the whole input
    is never held."""
    prefs = massive.large[:200]
    labeler = Labeler(EmbeddingAnnotator(encoder), "knn", encoder=encoder, chunk_size=16)
    labeler.fit([i.text for i in prefs], [i.label for i in prefs])
    out = tmp_path / "out.jsonl"
    seen_on_disk = []

    def stream():
        for n, item in enumerate(massive.small[:100]):
            if n % 16 == 0 and out.exists():
                seen_on_disk.append((n, out.read_bytes().count(b"\n")))
            yield item

    with LabelledOutput(out) as output:
        output.claim(tmp_path / "in.jsonl")
        done, labelled, _ = labeler.label_into(output, stream())
    assert (done, labelled) == (0, 100)
    assert seen_on_disk[1:] == [(n, n) for n in range(16, 100, 16)]  # every earlier chunk written already
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in written] == list(labeler.method_.predict([i.text for i in massive.small[:100]]))


def test_the_encoder_cache_holds_a_working_set_not_the_corpus(encoder, massive):
    texts = [i.text for i in massive.small[:300]]
    size = encoder.cache_size
    try:
        encoder._cache.clear()
        encoder.cache_size = 100
        first = encoder.encode(texts)
        assert len(encoder._cache) == 100
        assert set(encoder._cache) == set(texts[-100:])  # the most recent ones
        again = encoder.encode(texts[:10])                # dropped, so encoded again: the same vectors
        np.testing.assert_allclose(again, first[:10], atol=1e-6)
        encoder.reserve(50)
        assert encoder.cache_size == 100                  # reserve only ever grows it
    finally:
        encoder.cache_size = size
        encoder._cache.clear()
