"""cmalign report: the numbers behind its figures, and the page itself opened in a real headless Chromium.

The bank, the labelled file and the review are made by the real commands (the embedded model on a
slice of massive_scenario).
"""

import base64
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from cmalign import LabelSet, MemoryBank
from cmalign.cli import main
from cmalign.data import load_bundled
from cmalign.errors import DataError
from cmalign.evaluation.bench import MethodResult, RunResult
from cmalign.evaluation.metrics import Calibration, expected_calibration_error
from cmalign.method.bank import BankEntry
from cmalign import __version__
from cmalign.report import (NEEDS_MATPLOTLIB, TABLE_ROWS, WEAKEST, BenchRun, confusions, heatmap, label_rows,
                            read_bench, read_labelled, read_review, render, weakest_labels)

HOSTILE = "<script>window.__pwned = 1</script> wake me & up at <b>six</b>"
SECTIONS = ("summary", "discrepancies", "reliability", "labels", "confidence", "review")


# -- the numbers, on small synthetic inputs ---------------------------------------------------------

def test_calibration_bins_are_half_open_and_weighted_by_size():
    # bins of 1/15: 0.2 = 3/15 closes the third bin, 0.95 is in the last, 0 joins the first
    confidence = np.array([0.2, 0.2, 0.95, 0.95, 0.95, 0.95, 0.0])
    correct = np.array([True, False, True, True, True, False, False])
    calibration = Calibration.of(confidence, correct)
    assert calibration.count.tolist() == [1, 0, 2] + [0] * 11 + [4]
    assert calibration.correct.tolist() == [0, 0, 1] + [0] * 11 + [3]
    # |0 - 0| * 1/7 + |0.5 - 0.2| * 2/7 + |0.75 - 0.95| * 4/7
    assert calibration.ece == pytest.approx((0.3 * 2 + 0.2 * 4) / 7)
    assert (calibration.n, calibration.accuracy) == (7, pytest.approx(4 / 7))
    streamed = Calibration()  # a file read a line at a time fills the same bins
    for c, right in zip(confidence, correct):
        streamed.add(float(c), bool(right))
    assert streamed.count.tolist() == calibration.count.tolist() and streamed.ece == pytest.approx(calibration.ece)
    # the bench's ECE: the top probability against the gold label, in the same bins
    probs = np.array([[0.2, 0.8], [0.9, 0.1], [0.6, 0.4]])
    assert expected_calibration_error(probs, [1, 1, 0]) == pytest.approx((0.2 + 0.9 + 0.4) / 3)
    with pytest.raises(ValueError, match="from 0 to 1"):
        Calibration.of(np.array([0.5, np.nan]), np.array([True, False]))


def _bank(entries: dict[str, dict[str, int]], labels: LabelSet) -> MemoryBank:
    built = {key: BankEntry(key, key in labels, tuple(sorted(counts.items(), key=lambda kv: -kv[1])))
             for key, counts in entries.items()}
    return MemoryBank(labels=labels, annotator="test", entries=built,
                      n_samples=sum(sum(c.values()) for c in entries.values()))


def test_heatmap_stays_readable_with_150_labels():
    labels = LabelSet(tuple(f"label {i:03d}" for i in range(150)))
    rng = np.random.default_rng(1)
    entries = {}
    for i in range(60):  # 60 answers, each sent elsewhere a different number of times
        key = labels.labels[i] if i % 7 else f"not a label {i}"
        others = rng.choice(150, size=4, replace=False)
        entries[key] = {key: 5} if key in labels else {}
        entries[key] |= {labels.labels[j]: int(1 + (i + n) % 6) for n, j in enumerate(others)
                         if labels.labels[j] != key}
    bank = _bank(entries, labels)
    data = heatmap(bank)
    off = {k: sum(n for label, n in c.items() if label != k) for k, c in entries.items()}
    assert len(data.rows) == 26 and data.rows[-1] == "(35 other answers)" and data.other_rows == 35
    # the 25 rows shown are those with the most off-diagonal mass, largest first
    assert [off[r] for r in data.rows[:-1]] == sorted(off.values(), reverse=True)[:25]
    assert len(data.columns) == 31 and data.columns[-1] == "(120 other labels)"
    # the diagonal: every shown answer that is a label has its own label as the column at its position
    own = [r for r in data.rows[:-1] if r in labels]
    assert own and all(data.columns[i] == r for i, r in enumerate(data.rows[:-1]) if r in labels)
    # the other columns are the labels the shown answers went to most (a row's own label may have less
    # mass than a label left out: the diagonal needs it), and after the last row they go by mass
    mass = {label: sum(entries[r].get(label, 0) for r in data.rows[:-1]) for label in labels.labels}
    others = [c for c in data.columns[:-1] if c not in own]
    assert min(mass[c] for c in others) >= max(v for c, v in mass.items() if c not in data.columns)
    tail = [mass[c] for c in data.columns[len(data.rows) - 1:-1]]
    assert tail == sorted(tail, reverse=True) and len(tail) == 30 - 25
    assert np.allclose(data.shares.sum(axis=1), 1.0)
    assert data.out_of_set[:-1] == tuple(r not in labels for r in data.rows[:-1])
    top = confusions(bank)[0]
    assert top.count == max(n for k, c in entries.items() for label, n in c.items() if label != k)


def test_long_label_table_scrolls_and_a_short_one_is_whole():
    for n in (TABLE_ROWS, TABLE_ROWS + 1):
        labels = LabelSet(tuple(f"label {i:02d}" for i in range(n)))
        bank = _bank({label: {label: 2, labels.labels[(i + 1) % n]: 1} for i, label in enumerate(labels.labels)},
                     labels)
        page, _ = render(bank, Path("bank.json"))
        section = page.split('<section id="labels">')[1].split("</section>")[0]
        assert section.count("<tbody><tr>") == 1 and section.count("<tr>") == n + 1  # every label is a row
        assert ('class="scroll"' in section) == (n > TABLE_ROWS)


def test_heatmap_is_none_when_the_annotator_was_always_right():
    labels = LabelSet(("a", "b"))
    assert heatmap(_bank({"a": {"a": 3}, "b": {"b": 2}}, labels)) is None


def test_labelled_file_is_counted_with_gold_and_bad_lines_named(tmp_path):
    labels = LabelSet(("a", "b", "c"))
    rows = [{"line": 1, "text": "x", "annotator_label": "a", "label": "a", "confidence": 0.9, "gold": "a"},
            {"line": 2, "text": "y", "annotator_label": "a", "label": "b", "confidence": 0.3, "gold": "C"},
            {"line": 3, "text": "z", "annotator_label": "c", "label": "c", "confidence": 1.0}]
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = read_labelled(path, labels)
    assert (summary.n, summary.compared, summary.changed) == (3, 3, 1)
    assert summary.per_label == {"a": 1, "b": 1, "c": 1}
    assert summary.histogram.sum() == 3 and summary.histogram[0].sum() == 1  # one changed
    assert (summary.gold, summary.gold_correct, summary.reliability.n) == (2, 1, 2)  # gold "C" is canonical "c"
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1] | {"label": "d"}) + "\n")
    with pytest.raises(DataError) as error:
        read_labelled(path, labels)
    assert error.value.line == 2 and "not one of the bank's labels" in error.value.problem


def _bench_line(seed: int = 0) -> str:
    return json.dumps(RunResult("massive_scenario", "0.01", seed, "test", 115, 2974,
                                {"base": MethodResult(0.512, 2974)}).to_json())


@pytest.mark.parametrize("old, new, field", [
    ('"seed": 0', '"seed": 1e400', "seed"),  # JSON's 1e400 is an infinite float
    ('"seed": 0', '"seed": 2.5', "seed"),
    ('"seed": 0', '"seed": true', "seed"),
    ('"n_eval": 2974', '"n_eval": -1', "n_eval"),
    ('"n_preference": 115', '"n_preference": 1e400', "n_preference"),
    ('"n_preference": 115', '"n_preference": 99999999999999999999', "n_preference"),
    ('"accuracy": 0.512', '"accuracy": NaN', "accuracy"),
    ('"accuracy": 0.512', '"accuracy": Infinity', "accuracy"),
    ('"accuracy": 0.512', '"accuracy": 1.5', "accuracy"),
    ('"accuracy": 0.512', '"accuracy": "0.5"', "accuracy"),
    ('"dataset": "massive_scenario"', '"dataset": null', "dataset"),
])
def test_bench_numbers_that_are_not_finite_or_in_range_are_refused(tmp_path, old, new, field):
    good = _bench_line()
    assert old in good
    path = tmp_path / "bench.jsonl"
    path.write_text(_bench_line(1) + "\n" + good.replace(old, new) + "\n")
    with pytest.raises(DataError) as error:
        read_bench(path)
    # named by the field, or by the number where the JSON reader itself refuses it (1e400, NaN)
    number = new.split(": ", 1)[1]
    assert (error.value.path, error.value.line) == (str(path), 2)
    assert field in error.value.problem or number in error.value.problem
    assert "\n" not in str(error.value)


def test_nothing_non_finite_reaches_the_page():
    labels = LabelSet(("a", "b"))
    bank = _bank({"a": {"a": 3, "b": 1}, "b": {"b": 2}}, labels)
    page, _ = render(bank, Path("bank.json"), bench=[BenchRun("d", "0.01", 0, 6, 10, {"cm_best": 0.5})])
    assert 'data-sort="0.5">0.500</td>' in page
    for bad in (float("nan"), float("inf")):  # a reader lets none through; the page refuses one all the same
        with pytest.raises(ValueError, match="finite"):
            render(bank, Path("bank.json"), bench=[BenchRun("d", "0.01", 0, 6, 10, {"cm_best": bad})])


# -- real inputs: a bank and a labelled file made by the commands ------------------------------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("report")
    ds = load_bundled("massive_scenario")
    # the hostile text is mislabelled, so that review puts it among the rows the page shows
    prefs = [{"text": i.text, "label": i.label} for i in ds.large[:150]] + [{"text": HOSTILE, "label": "weather"}]
    (root / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prefs))
    new = [{"text": i.text} for i in ds.small[:199]] + [{"text": HOSTILE}]
    (root / "new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new))
    assert main(["fit", str(root / "prefs.jsonl"), "-o", str(root / "bank.json")]) == 0
    assert main(["annotate", str(root / "new.jsonl"), "--bank", str(root / "bank.json"),
                 "-o", str(root / "out.jsonl")]) == 0
    assert main(["review", "--bank", str(root / "bank.json"), "--labelled", str(root / "out.jsonl"), "--n", "30",
                 "-o", str(root / "review.jsonl")]) == 0
    runs = [RunResult("massive_scenario", "0.01", seed, "test", 115, 2974,
                      {"base": MethodResult(0.512, 2974), "cm_best": MethodResult(0.74 + seed / 100, 2974, 115, 0.04)})
            for seed in (0, 1)]
    (root / "bench.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in runs))
    return root


def test_review_of_another_bank_is_refused(inputs, tmp_path):
    bank = MemoryBank.load(inputs / "bank.json")
    lines = (inputs / "review.jsonl").read_text().splitlines()
    dropped = [line for line in lines if json.loads(line)["kind"] == "preference"][3]
    (tmp_path / "review.jsonl").write_text("\n".join(line for line in lines if line != dropped) + "\n")
    with pytest.raises(DataError, match="not the bank's 151 preference samples"):
        read_review(tmp_path / "review.jsonl", bank)
    (tmp_path / "reversed.jsonl").write_text("\n".join(reversed(lines)) + "\n")  # the top is by rank, not order
    for path in (inputs / "review.jsonl", tmp_path / "reversed.jsonl"):
        review = read_review(path, bank)
        assert len(review.preference) == 151 and review.n_labelled == 30
        assert [r.rank for r in review.top] == list(range(1, 21)) and HOSTILE in [r.text for r in review.top]


def test_report_of_a_bad_bench_file_is_one_line(inputs, tmp_path, capsys):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(_bench_line() + "\n" + _bench_line().replace('"seed": 0', '"seed": 1e400') + "\n")
    out = tmp_path / "r.html"
    code = main(["report", "--bank", str(inputs / "bank.json"), "--bench", str(bench), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"{bench}:2: the number 1e400 is too large" in err
    assert not out.exists()


def test_texts_are_escaped_in_the_html(inputs):
    bank = MemoryBank.load(inputs / "bank.json")
    page, figures = render(bank, inputs / "bank.json", review=read_review(inputs / "review.jsonl", bank))
    assert HOSTILE not in page and "&lt;script&gt;window.__pwned = 1&lt;/script&gt; wake me &amp; up" in page
    assert page.count("<script>") == 1  # the page's own sort script, and nothing else
    assert set(figures) == {"heatmap", "reliability", "weakest-labels"}


def test_same_inputs_give_the_same_page(inputs):
    bank = MemoryBank.load(inputs / "bank.json")

    def page():
        return render(bank, inputs / "bank.json", labelled=read_labelled(inputs / "out.jsonl", bank.labels),
                      review=read_review(inputs / "review.jsonl", bank), bench=read_bench(inputs / "bench.jsonl"))

    first, second = page(), page()
    assert first == second  # the HTML and every figure's PNG, byte for byte
    assert f"cmalign {__version__}, bank digest {bank.digest()}." in first[0]


def test_the_weakest_labels_are_the_lowest_scores(inputs):
    bank = MemoryBank.load(inputs / "bank.json")
    rows = label_rows(bank, read_review(inputs / "review.jsonl", bank), None)
    weakest = weakest_labels(rows, held_out=True)
    scored = [r for r in rows if r.held_out]
    assert len(scored) > WEAKEST and len(weakest) == WEAKEST
    accuracy = [r.held_out_accuracy for r in weakest]
    assert accuracy == sorted(accuracy) and accuracy[-1] <= min(r.held_out_accuracy for r in scored[WEAKEST:])
    assert weakest_labels(rows[:3], held_out=True) == [r for r in rows[:3] if r.held_out]  # fewer: all of them


def test_reliability_from_gold_labels_without_a_review(inputs, tmp_path):
    gold = {n: i.label for n, i in enumerate(load_bundled("massive_scenario").small[:199], start=1)}
    rows = [json.loads(line) for line in (inputs / "out.jsonl").read_text().splitlines()]
    with_gold = tmp_path / "out.jsonl"  # the hostile last line has no gold label: it is not counted
    with_gold.write_text("".join(json.dumps(r | ({"truth": gold[r["line"]]} if r["line"] in gold else {})) + "\n"
                                 for r in rows))
    bank = MemoryBank.load(inputs / "bank.json")
    summary = read_labelled(with_gold, bank.labels, gold_field="truth")
    assert summary.reliability.n == summary.gold == 199
    assert summary.gold_correct == sum(r["label"] == gold.get(r["line"]) for r in rows)
    page, figures = render(bank, inputs / "bank.json", labelled=summary, gold_field="truth")
    assert "reliability" in figures and "labelled items against their &#39;truth&#39; field" in page


# -- the page in a real browser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    assert chromium is not None, "no chromium: sh tests/install-browser.sh (Debian's Chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


def _open(browser, page_path):
    """The page loaded in a fresh tab, with every console message, page error and failed request."""
    problems = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("request", lambda r: None if r.url.startswith(("data:", page_path.as_uri()))
            else problems.append(f"request for {r.url}"))
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    return page, problems


def _images(page):
    return page.evaluate("[...document.images].map(i => [i.alt, i.naturalWidth, i.naturalHeight, i.src])")


def test_full_report_in_chromium(inputs, browser, capsys):
    out = inputs / "report.html"
    assert main(["report", "--bank", str(inputs / "bank.json"), "--labelled", str(inputs / "out.jsonl"),
                 "--review", str(inputs / "review.jsonl"), "--bench", str(inputs / "bench.jsonl"),
                 "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    page, problems = _open(browser, out)
    try:
        images = _images(page)
        assert [alt for alt, *_ in images] == ["discrepancy heatmap", "reliability diagram", "the weakest labels",
                                               "confidence histogram"]
        folder = inputs / "report_files"
        for (alt, width, height, src), name in zip(images, ("heatmap", "reliability", "weakest-labels", "confidence")):
            assert width > 0 and height > 0, alt
            # the embedded figure is the PNG written beside the page
            assert base64.b64decode(src.split(",", 1)[1]) == (folder / f"{name}.png").read_bytes()
        assert sorted(p.name for p in folder.iterdir()) == ["confidence.png", "heatmap.png", "reliability.png",
                                                            "weakest-labels.png"]
        for section in SECTIONS:
            assert page.locator(f"section#{section} h2").count() == 1
        assert page.locator("section .missing").count() == 0  # every input given: nothing missing
        # the hostile text is on the page as text, and did not run
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert HOSTILE in page.locator("section#review table tbody tr td:nth-child(4)").all_inner_texts()
        assert page.locator("section#review table tbody tr").count() == 20
        review = read_review(inputs / "review.jsonl", MemoryBank.load(inputs / "bank.json"))
        right = sum(r.suggested == r.label for r in review.preference)
        assert f"{right} of 151 preference samples" in page.locator("section#summary").inner_text()
        assert f"ECE, 15 bins) {review.reliability().ece:.3f}" in page.locator("section#reliability").inner_text()
        assert page.locator("section#summary table tbody tr").count() == 2  # the two bench runs
        # a click on a column sorts the table by it (numbers as numbers), a second click reverses it
        table = page.locator("section#labels table")
        header = table.locator("th", has_text="preference samples")
        header.click()
        column = [int(t) for t in table.locator("tbody tr td:nth-child(2)").all_inner_texts()]
        assert column == sorted(column) and len(column) == 18
        header.click()
        assert [int(t) for t in table.locator("tbody tr td:nth-child(2)").all_inner_texts()] == sorted(column)[::-1]
        # 18 labels: the whole table is on the page, no inner scroll box hides its last row
        assert page.locator("section#labels .scroll").count() == 0
        assert "The 10 weakest labels" in page.locator("section#labels").inner_text()
        # the review's short cells hold one line each (no word cut in two); the text and reason wrap
        lines = page.evaluate("""[...document.querySelectorAll("section#review tbody tr")].map(tr =>
            [...tr.cells].map(td => { const r = document.createRange(); r.selectNodeContents(td);
                                      return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }))""")
        assert all(n == 1 for row in lines for j, n in enumerate(row) if j not in (3, 8))
        assert max(row[3] for row in lines) > 1  # a long text wraps instead of widening the page
        cut = page.evaluate("""[...document.querySelectorAll("section#review tbody td")].flatMap(td => {
            const node = td.firstChild, words = [...(node?.textContent ?? "").matchAll(/\\S+/g)];
            return words.filter(w => { const r = document.createRange(); r.setStart(node, w.index);
                                       r.setEnd(node, w.index + w[0].length);
                                       return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size > 1; })
                        .map(w => w[0]); })""")
        assert cut == []  # every word on one line: they wrap between words
    finally:
        page.close()
    assert problems == []


def test_bank_only_report_says_what_is_missing(inputs, browser, tmp_path):
    out = tmp_path / "bank-only.html"
    assert main(["report", "--bank", str(inputs / "bank.json"), "-o", str(out)]) == 0
    page, problems = _open(browser, out)
    try:
        images = _images(page)
        assert [alt for alt, *_ in images] == ["discrepancy heatmap", "the weakest labels"]
        assert all(width > 0 and height > 0 for _, width, height, _ in images)
        for section in ("reliability", "confidence", "review"):
            missing = page.locator(f"section#{section} .missing")
            assert missing.count() == 1 and "--" in missing.inner_text()  # names the option that gives it
        assert "No bench results" in page.locator("section#summary").inner_text()
    finally:
        page.close()
    assert problems == []
    assert sorted(p.name for p in (tmp_path / "bank-only_files").iterdir()) == ["heatmap.png", "weakest-labels.png"]


def test_existing_report_is_refused_without_overwrite(inputs, tmp_path, capsys):
    out = tmp_path / "r.html"
    out.write_text("mine")
    code = main(["report", "--bank", str(inputs / "bank.json"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "exists already: --overwrite" in err
    assert out.read_text() == "mine" and not (tmp_path / "r_files").exists()
    assert main(["report", "--bank", str(inputs / "bank.json"), "-o", str(out), "--overwrite"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_without_matplotlib_one_line(inputs, tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails as if not installed
    code = main(["report", "--bank", str(inputs / "bank.json"), "-o", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"cmalign: error: {NEEDS_MATPLOTLIB}\n"
    assert not (tmp_path / "r.html").exists()
