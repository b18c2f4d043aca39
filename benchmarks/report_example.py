"""The README's screenshot of ``cmalign report``: the real commands on the bundled MASSIVE data.

In WORK (made if missing) it writes
  preferences.jsonl  the paper's protocol split of massive_scenario, budget 0.05, seed 0: the
                     preference sample as {text, label}
  inbox.jsonl        the evaluation items (2,974) as {text, gold}
then runs `cmalign fit`, `annotate`, `review` and `report` through ``cmalign.cli.main``, and saves
the top of report.html (the summary and the discrepancy heatmap), as headless Chromium shows it
1200 px wide, to OUT (default: docs/report-massive.png in this checkout).

`annotate` writes {line, text, ...its record} and does not carry the input's other fields, so the
gold label is joined back onto labelled.jsonl by line number before `report` reads it (that is what
its reliability diagram and "against the gold field" count use).

    PYTHONPATH=src python benchmarks/report_example.py /tmp/report-example
    PYTHONPATH=src python benchmarks/report_example.py /tmp/report-example --out shot.png

Needs the report extra (matplotlib) and playwright with a Chromium on PATH (`chromium`).
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from cmalign.cli import main
from cmalign.data import Budget, load_bundled, protocol_split

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 1200
MAX_HEIGHT = 1600  # the top of a long page: the summary and the heatmap fit in it


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def add_gold(labelled: Path, gold: list[str]) -> None:
    """Put ``gold[line - 1]`` into each line of ``labelled`` as ``gold`` (annotate drops extra fields)."""
    rows = [json.loads(line) for line in labelled.read_text(encoding="utf-8").splitlines()]
    if len(rows) != len(gold):
        raise SystemExit(f"{labelled}: {len(rows)} lines for {len(gold)} items")
    write_jsonl(labelled, ({**row, "gold": gold[row["line"] - 1]} for row in rows))


def run(argv: list[str]) -> None:
    print("$ cmalign " + " ".join(argv), flush=True)
    if main(argv) != 0:
        raise SystemExit(f"cmalign {argv[0]} failed")


def screenshot(page: Path, out: Path) -> None:
    """The page from its top to the end of the heatmap, at most MAX_HEIGHT px (the table of
    confusions under it would be cut mid-row)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"))
        tab = browser.new_page(viewport={"width": WIDTH, "height": 900}, device_scale_factor=1)
        tab.goto(page.resolve().as_uri())
        box = tab.locator("#discrepancies img").first.bounding_box()
        height = min(MAX_HEIGHT, int(box["y"] + box["height"]) + 16)
        tab.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": WIDTH, "height": height}, full_page=True)
        browser.close()


def make(work: Path, out: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    split = protocol_split(load_bundled("massive_scenario"), Budget(fraction=0.05), seed=0)
    prefs, inbox = work / "preferences.jsonl", work / "inbox.jsonl"
    bank, labelled, review, report = (work / name for name in
                                      ("bank.json", "labelled.jsonl", "review.jsonl", "report.html"))
    write_jsonl(prefs, ({"text": item.text, "label": item.label} for item in split.preference))
    write_jsonl(inbox, ({"text": item.text, "gold": item.label} for item in split.evaluation))
    print(f"{len(split.preference)} preference samples, {len(split.evaluation)} items to label", flush=True)

    run(["fit", str(prefs), "-o", str(bank)])  # fit has no --overwrite: it replaces a bank
    run(["annotate", str(inbox), "--bank", str(bank), "-o", str(labelled), "--overwrite"])
    add_gold(labelled, [item.label for item in split.evaluation])
    run(["review", "--bank", str(bank), "--labelled", str(labelled), "-o", str(review), "--overwrite"])
    run(["report", "--bank", str(bank), "--labelled", str(labelled), "--review", str(review),
         "-o", str(report), "--overwrite"])

    out.parent.mkdir(parents=True, exist_ok=True)
    screenshot(report, out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="folder for the data files, the bank and the report")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report-massive.png",
                        help="the screenshot (default: docs/report-massive.png)")
    args = parser.parse_args()
    make(args.work, args.out)
