"""`cmalign select`: which items to label, deterministic, in a file `fit` reads once labelled; and the
bench's selectors on a real dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmalign.cli import main
from cmalign.data import load_bundled
from cmalign.select import select


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """600 labelled items of massive_scenario's pool (the labels are kept aside as the 'user')."""
    items = load_bundled("massive_scenario").large[:600]
    path = tmp_path_factory.mktemp("pool") / "pool.jsonl"
    path.write_text("".join(json.dumps({"text": i.text}) + "\n" for i in items), encoding="utf-8")
    return path, {i.text: i.label for i in items}


def test_select_writes_n_items_the_same_twice_and_fit_reads_them_once_labelled(pool, tmp_path, capsys):
    path, gold = pool
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["select", str(path), "--n", "100", "-o", str(first)]) == 0
    assert main(["select", str(path), "--n", "100", "-o", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    # with the label set, cover clusters the annotator's scores beside the embeddings: another choice
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(sorted(set(gold.values()))) + "\n")
    aware = tmp_path / "aware.jsonl"
    assert main(["select", str(path), "--n", "100", "-o", str(aware), "--labels", str(labels)]) == 0
    assert len(aware.read_text().splitlines()) == 100 and aware.read_bytes() != first.read_bytes()
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    assert len(rows) == 100 and len({r["text"] for r in rows}) == 100
    assert all(r["label"] == "" and r["text"] in gold for r in rows)
    # unlabelled, fit refuses it on the first row; labelled, fit takes it
    assert main(["fit", str(first), "-o", str(tmp_path / "bank.json")]) == 2
    assert "label" in capsys.readouterr().err
    for r in rows:
        r["label"] = gold[r["text"]]
    first.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["fit", str(first), "-o", str(tmp_path / "bank.json")]) == 0
    # a second round with the bank picks items not labelled yet, and refuses to overwrite
    assert main(["select", str(path), "--n", "50", "-o", str(first), "--bank", str(tmp_path / "bank.json")]) == 2
    assert "exists already" in capsys.readouterr().err
    more = tmp_path / "more.csv"
    assert main(["select", str(path), "--n", "50", "-o", str(more), "--bank", str(tmp_path / "bank.json")]) == 0
    chosen = more.read_text().splitlines()
    assert chosen[0] == "line,text,label" and len(chosen) == 51
    assert not {r["text"] for r in rows} & {line.split(",")[1] for line in chosen[1:]}


def test_cover_reaches_more_classes_than_random(encoder):
    """The point of a selector at 1%: a random 1% misses classes that a spread-out sample reaches."""
    items = load_bundled("banking77").large[:3000]
    vectors = encoder.encode([i.text for i in items])
    labels = np.array([i.label for i in items])
    covered = {name: np.mean([len(set(labels[select(name, 60, len(items), seed=s, vectors=lambda: vectors)]))
                              for s in (0, 1)]) for name in ("random", "cover")}
    assert covered["cover"] >= covered["random"] + 3, covered


def test_unknown_selector_and_bad_n(pool, tmp_path, capsys):
    path, _ = pool
    assert main(["bench", "--dataset", "banking77", "--select", "random,bogus"]) == 2
    assert "unknown selector 'bogus'" in capsys.readouterr().err
    assert main(["select", str(path), "--n", "0", "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "--n 0" in capsys.readouterr().err


def test_bench_draws_the_preference_sample_by_each_selector(tmp_path, capsys):
    ds = load_bundled("massive_scenario")
    folder = tmp_path / "data"
    folder.mkdir()
    for name, items in (("large", ds.large[:800]), ("small", ds.small[:200])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n"
                                                      for i in items), encoding="utf-8")
    assert main(["bench", "--data", str(folder), "--budget", "n=40", "--seed", "0", "--select", "all", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["selection"] for r in lines] == ["random", "cover", "uncertain"]
    assert {r["n_preference"] for r in lines} == {40} and {r["n_eval"] for r in lines} == {200}
    # the selectors drew other samples: the methods that learn only from them score differently
    assert len({r["methods"]["knn"]["accuracy"] for r in lines}) == 3
    assert len({r["methods"]["base"]["accuracy"] for r in lines}) == 1  # the annotator alone sees no sample
