"""Writes every benchmark table in the README and the docs pages from the JSON the benchmark scripts
keep in ``benchmarks/results/``: no figure in those tables is typed by hand.

A table goes between a page's ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` markers, and
each ends with where its figures came from (the command, the date, the machine and the commit, from
the JSON's ``provenance``). ``RENDERERS`` maps each NAME to the function that writes its table;
adding a table is one function registered with ``@renderer("NAME")``:

summary           the README's one table: cm_best against the annotator, kNN and the regression
accuracy-ENCODER  the five-dataset protocol on that encoder         (encoders.py accuracy)
speed             raw encoding by each encoder                      (encoders.py speed)
throughput        whole annotate commands against raw encoding      (throughput.py)
scale             annotate on 10k to 1M items: memory, speed        (scale.py)
selection         cm_best, kNN and logreg on each selector's sample  (selection.py)
review            how many flipped labels review ranks first        (selection.py --review)
serve             cmalign serve under load, and what it learns per round (serve.py)
llm-strategies    the paper's prompting strategies with and without CM on a local LLM (llm_strategies.py)

    python benchmarks/render.py            # rewrite the pages
    python benchmarks/render.py --check    # exit 1 if a page differs from what its JSON renders
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from llm_strategies import letters_line, side_by_side, table as llm_table  # noqa: E402
from encoders import COMPARED, RESULTS as ENCODERS, accuracy_table, speed_block  # noqa: E402

RESULTS = HERE / "results"
README = ROOT / "README.md"
DOCS = ROOT / "docs"

RENDERERS: dict[str, Callable[[], str | None]] = {}  # NAME -> its table, or None where no JSON is kept


def renderer(name: str) -> Callable[[Callable[[], str | None]], Callable[[], str | None]]:
    def register(func: Callable[[], str | None]) -> Callable[[], str | None]:
        RENDERERS[name] = func
        return func
    return register


def pages() -> list[Path]:
    """Every page a table may be written into: the README and the docs site's Markdown."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def read_json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def source_line(*records: dict) -> str:
    """Where the figures came from, said once for each distinct ``provenance`` among ``records``."""
    seen: list[dict] = []
    for record in records:
        p = record.get("provenance")
        if p is not None and p not in seen:
            seen.append(p)
    if not seen:
        return "*Source: not recorded.*"
    # a line break inside the emphasis keeps the line short on a page read as source
    said = [f"`{p['command']}`\non {p['date']}, {p['machine']['cores']} cores ({p['machine']['cpu']}), code "
            f"`{p['commit']}`" for p in seen]
    if len(said) == 1:
        return f"*Measured by {said[0]}.*"
    return "Measured by:\n\n" + "\n".join(f"- {line}".replace("\n", "\n  ") for line in said)


def accuracy(encoder: str) -> str | None:
    path = ENCODERS / f"bench-{encoder}.jsonl"
    if not path.exists():
        return None
    runs = read_json_lines(path)
    table, summary = accuracy_table(runs)
    return (f"Mean of seeds {' and '.join(map(str, summary['seeds']))}, annotator `{summary['annotator']}`: "
            f"`cm_best` clears the bar on {summary['cleared']} of {summary['rows']} rows, mean accuracy "
            f"{summary['mean_cm_best']:.3f}.\n\n{table}\n\n{source_line(*runs)}")


for _path in sorted(ENCODERS.glob("bench-*.jsonl")):
    _encoder = _path.stem.removeprefix("bench-")
    RENDERERS[f"accuracy-{_encoder}"] = lambda encoder=_encoder: accuracy(encoder)


@renderer("summary")
def summary() -> str | None:
    path = ENCODERS / "bench-bge-small.jsonl"
    if not path.exists():
        return None
    runs = read_json_lines(path)
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["budget"]), []).append(run)
    lines = ["| dataset | labelled | annotator alone | kNN | logistic regression | `cm_best` | gain |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for (dataset, budget), group in groups.items():
        mean = {m: statistics.fmean(r["methods"][m]["accuracy"] for r in group) for m in (*COMPARED, "cm_best")}
        gain = mean["cm_best"] - max(mean[m] for m in COMPARED)
        lines.append(f"| {dataset} | {float(budget):.0%} | {mean['base']:.3f} | {mean['knn']:.3f} | "
                     f"{mean['logreg']:.3f} | **{mean['cm_best']:.3f}** | {100 * gain:+.1f} |")
    seeds = sorted({r["seed"] for r in runs})
    return (f"Accuracy on each dataset's evaluation set, mean of seeds {' and '.join(map(str, seeds))}; the gain is "
            "in points\nover the best of the other three.\n\n" + "\n".join(lines) + "\n\n" + source_line(*runs))


@renderer("speed")
def speed() -> str | None:
    path = ENCODERS / "speed.json"
    if not path.exists():
        return None
    return speed_block() + "\n\n" + source_line(json.loads(path.read_text()))


@renderer("throughput")
def throughput() -> str | None:
    paths = sorted(RESULTS.glob("throughput-*.json"))
    if not paths:
        return None
    r = json.loads(paths[-1].read_text())
    names = {"encode": "raw encoding (in the benchmark's process, model loaded)",
             "cm_remap": "`annotate --method cm_remap`",
             "cm_best_adapt0": "`annotate --adapt 0` (`cm_best` from the state `fit` saved, learning nothing more)",
             "cm_best": "`annotate` (`cm_best`: learns from up to 4,096 of the input items first)",
             "cm_best_refit": "`annotate` (`cm_best`, a bank without its state: fitted again first)"}
    lines = [f"{r['items']:,} {r['dataset']} items, a bank of {r['preference_samples']} preference samples, median "
             f"of {r['repeats']} run(s):", "",
             "| | items/s | time / raw encoding | start to first line |", "|---|---:|---:|---:|"]
    for key, name in names.items():
        first = r["median_seconds_to_first_line"].get(key)
        lines.append(f"| {name} | {r['items_per_s'][key]:.0f} | {r['time_ratio_to_encode'][key]:.2f} | "
                     + (f"{first:.1f} s |" if first is not None else " |"))
    return "\n".join(lines) + "\n\n" + source_line(r)


@renderer("scale")
def scale() -> str | None:
    paths = sorted(RESULTS.glob("scale-*.jsonl"))
    if not paths:
        return None
    newest = {r["items"]: r for r in read_json_lines(paths[-1]) if "resumed_from" not in r}  # the last run of a size
    rows = [newest[n] for n in sorted(newest)]
    lines = [f"Encoder `{rows[0]['encoder']}`, `cm_best` with a 5% CLINC bank:", "",
             "| items | peak RSS | items/s, whole command | learning step (fixed) | items/s labelling after it "
             "| first line | raw encoding in-process | whole command / raw | labelling / raw |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        label_rate = r.get("label_items_per_s")
        lines.append(f"| {r['items']:,} | {r['peak_rss_mb']:.0f} MB | {r['items_per_s']:.0f} | "
                     + (f"{r['learn_seconds']:.1f} s | {label_rate:.0f} | " if label_rate else "| | ")
                     + f"{r['seconds_to_first_line']:.1f} s | {r['encode_items_per_s']:.0f} | {r['ratio_to_encode']:.2f} | "
                     + (f"{label_rate / r['encode_items_per_s']:.2f} |" if label_rate else "|"))
    return "\n".join(lines) + "\n\n" + source_line(*rows)


@renderer("selection")
def selection() -> str | None:
    path = RESULTS / "selection.jsonl"
    if not path.exists():
        return None
    rows = read_json_lines(path)
    means = [r for r in rows if "mean_of_seeds" in r]
    lines = ["| dataset | budget | selector | labels reached | annotator | knn | logreg | cm_best | cm_best vs random |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(means, key=lambda r: (float(r["budget"]), r["dataset"])):
        gain = r["cm_best_gain_over_random"]
        lines.append(f"| {r['dataset']} | {float(r['budget']):.0%} | {r['selection']} | {r['labels_covered']:.1f} | "
                     f"{r['base']:.3f} | {r['knn']:.3f} | {r['logreg']:.3f} | {r['cm_best']:.3f} | "
                     + ("" if r["selection"] == "random" or gain is None else f"{100 * gain:+.1f}") + " |")
    seeds = sorted({r["seed"] for r in rows if "seed" in r})
    return (f"Mean of seeds {' and '.join(map(str, seeds))}; \"labels reached\" is how many of the dataset's labels "
            "the sample holds.\n\n" + "\n".join(lines) + "\n\n" + source_line(*rows))


@renderer("review")
def review() -> str | None:
    path = RESULTS / "review.jsonl"
    if not path.exists():
        return None
    rows = read_json_lines(path)
    by_dataset: dict[str, list[dict]] = {}
    for r in rows:
        by_dataset.setdefault(r["dataset"], []).append(r)
    lines = ["| dataset | preference samples | flipped | found in the first 2 x flipped | seconds |",
             "|---|---:|---:|---:|---:|"]
    for name, group in by_dataset.items():
        lines.append(f"| {name} | {group[0]['preference']} | {group[0]['flipped']} | "
                     + " / ".join(f"{r['found_in_top_2x']:.2f}" for r in group) + " | "
                     + " / ".join(f"{r['seconds']:.0f}" for r in group) + " |")
    seeds = " / ".join(str(r["seed"]) for r in next(iter(by_dataset.values())))
    lines = [f"Seeds {seeds}, one figure per seed:", "", *lines]
    return "\n".join(lines) + "\n\n" + source_line(*rows)


@renderer("llm-strategies")
def llm_strategies() -> str | None:
    paths = sorted((RESULTS / "llm").glob("*.json")) if (RESULTS / "llm").is_dir() else []
    if not paths:
        return "Not yet measured: no results are kept in `benchmarks/results/llm/`."
    parts = []
    for path in paths:
        data = json.loads(path.read_text())
        parts.append(f"**{data['model']}** (GGUF sha256 `{data['gguf_sha256'][:16]}`, served by {data['server']} "
                     "on loopback, `--concurrency 1`). Accuracy on the evaluation items, the mean over the seeds "
                     "measured;\nX+cm_best's requests and tokens per item count those its bank's preference "
                     "samples cost too;\nwall time is one run's whole `cmalign bench`, on a machine shared with "
                     "other work:\n\n" + llm_table(data) + "\n\n"
                     + (letters_line(data) + "\n\n" if data.get("letters") else "") + source_line(*data["runs"].values()))
    shared = side_by_side([json.loads(path.read_text()) for path in paths])
    if shared:
        parts.append("The models side by side on the runs they share (the same seed, so the same preference samples "
                     "and evaluation items):\n\n" + shared)
    return "\n\n".join(parts)


@renderer("serve")
def serve() -> str | None:
    path = RESULTS / "serve" / "serve-clinc.json"
    if not path.exists():
        return None
    from serve import table  # imports cmalign: only when this table is rendered
    result = json.loads(path.read_text())
    return table(result) + "\n\n" + source_line(result)


def blocks() -> dict[str, str]:
    """Every table that has its JSON, by marker name."""
    return {name: block for name, func in RENDERERS.items() if (block := func()) is not None}


def marker(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- bench:{re.escape(name)} -->\n).*?(<!-- /bench:{re.escape(name)} -->)", re.S)


MARKED = re.compile(r"<!-- bench:([\w.-]+) -->")


def render(text: str, rendered: dict[str, str]) -> str:
    """``text`` with every marked table it holds written anew (a marker without JSON is left alone)."""
    for name in MARKED.findall(text):
        if name in rendered:
            text = marker(name).sub(lambda m: m[1] + rendered[name] + "\n" + m[2], text)
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rendered = blocks()
    stale = []
    for page in pages():
        text = page.read_text()
        new = render(text, rendered)
        if new != text:
            stale.append(page)
            if "--check" not in argv:
                page.write_text(new)
    verb = "differ from their JSON" if "--check" in argv else "rewritten"
    print(f"{len(stale)} page(s) {verb}" + "".join(f"\n  {p.relative_to(ROOT)}" for p in stale))
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main())
