"""Writes the benchmarks' tables into the README, from the JSON the benchmark scripts keep in
``benchmarks/results/``: no figure in those tables is typed by hand.

A table goes between the README's ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` markers:

accuracy-ENCODER  the five-dataset protocol on that encoder   (encoders.py accuracy)
speed             raw encoding by each encoder                (encoders.py speed)
throughput        whole annotate commands against raw encoding (throughput.py)
scale             annotate on 10k to 1M items: memory, speed  (scale.py)

    python benchmarks/render.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from encoders import RESULTS as ENCODERS, accuracy_block, speed_block  # noqa: E402

README = HERE.parent / "README.md"
RESULTS = HERE / "results"


def throughput_block(path: Path) -> str:
    r = json.loads(path.read_text())
    names = {"encode": "raw encoding (in the benchmark's process, model loaded)",
             "cm_remap": "`annotate --method cm_remap`",
             "cm_best_adapt0": "`annotate --adapt 0` (`cm_best` from the state `fit` saved, learning nothing more)",
             "cm_best": "`annotate` (`cm_best`: learns from up to 4,096 of the input items first)",
             "cm_best_refit": "`annotate` (`cm_best`, a bank without its state: fitted again first)"}
    lines = [f"`python benchmarks/throughput.py --dataset {r['dataset']} --items {r['items']} --repeats {r['repeats']}` "
             f"({r['date']}, {r['threads']} cores, bank of {r['preference_samples']} preference samples; median "
             f"of {r['repeats']}):", "",
             "| | items/s | time / raw encoding | start to first line |", "|---|---:|---:|---:|"]
    for key, name in names.items():
        first = r["median_seconds_to_first_line"].get(key)
        lines.append(f"| {name} | {r['items_per_s'][key]:.0f} | {r['time_ratio_to_encode'][key]:.2f} | "
                     + (f"{first:.1f} s |" if first is not None else " |"))
    return "\n".join(lines)


def scale_block(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "resumed_from" not in r]
    lines = [f"`python benchmarks/scale.py` ({rows[0]['date']}, {rows[0]['threads']} cores, {rows[0]['encoder']}):", "",
             "| items | peak RSS | items/s, whole command | labelling loop | first line | raw encoding in-process "
             "| whole command / raw encoding |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: r["items"]):
        lines.append(f"| {r['items']:,} | {r['peak_rss_mb']:.0f} MB | {r['items_per_s']:.0f} | {r['loop_items_per_s']:.0f} "
                     f"| {r['seconds_to_first_line']:.1f} s | {r['encode_items_per_s']:.0f} | {r['ratio_to_encode']:.2f} |")
    return "\n".join(lines)


def blocks() -> dict[str, str]:
    out = {f"accuracy-{p.stem.removeprefix('bench-')}": accuracy_block(p.stem.removeprefix("bench-"))
           for p in sorted(ENCODERS.glob("bench-*.jsonl"))}
    if (ENCODERS / "speed.json").exists():
        out["speed"] = speed_block()
    for path in sorted(RESULTS.glob("throughput-*.json")):
        out["throughput"] = throughput_block(path)
    for path in sorted(RESULTS.glob("scale-*.jsonl")):
        out["scale"] = scale_block(path)
    return out


def main() -> None:
    text = README.read_text()
    written = []
    for name, block in blocks().items():
        pattern = re.compile(rf"(<!-- bench:{re.escape(name)} -->\n).*?(<!-- /bench:{re.escape(name)} -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda m: m[1] + block + "\n" + m[2], text)
            written.append(name)
    README.write_text(text)
    print(f"wrote {', '.join(written)} into {README}")


if __name__ == "__main__":
    main()
