"""What labelling costs on top of the model: the whole `cmalign annotate` command beside raw encoding.

Takes N items of a bundled dataset's pool (not used for the bank) and a bank fitted on a 5%
preference sample with `cmalign fit` (so the combined model's state is saved beside it), then,
REPEATS times and alternating so machine noise hits all alike:
  encode         raw sentence-embedding throughput of the same model on the same texts (in this
                 process, model loaded, empty cache)
  cm_remap       `cmalign annotate --method cm_remap` as a fresh process (read, load, label, write)
  cm_best        `cmalign annotate` with its default, the combined model, from its saved state; it
                 first learns from a sample of the input (its transductive step)
  cm_best_adapt0 the same with `--adapt 0`: no learning from the input, i.e. `cm_stack`
  cm_best_refit  the same with a copy of the bank that has no saved state: the method is fitted
                 again on the bank's samples before the first item is labelled
For each command: the wall time, and the time from start to the first labelled line written.
Prints JSON: medians, items per second and ratios to `encode`.

    python benchmarks/throughput.py --dataset clinc --items 10000 --repeats 3
    python benchmarks/throughput.py --src OTHER_CHECKOUT/src   # the same commands on other code
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import provenance

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the command sets it: both sides measured alike

from cmalign.data import Budget, load_bundled, protocol_split
from cmalign.encoder import SentenceEncoder


def command(argv: list[str], out: Path, src: str | None) -> tuple[float, float]:
    """(wall seconds, seconds to the first complete line in ``out``) of ``python -m cmalign argv``."""
    env = dict(os.environ, **({"PYTHONPATH": src} if src else {}))
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cmalign", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    first = None
    while proc.poll() is None:
        if first is None and out.exists() and b"\n" in out.read_bytes()[:65536]:
            first = time.perf_counter() - start
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"cmalign {' '.join(argv)} failed: {proc.stderr.read()}")
    return wall, first if first is not None else wall


def run(dataset: str, n_items: int, repeats: int, src: str | None) -> dict:
    ds = load_bundled(dataset)
    split = protocol_split(ds, Budget(fraction=0.05), seed=0)
    used = {i.line for i in split.preference}
    pool = [i for i in (ds.large or ds.small) if i.line not in used]
    if len(pool) < n_items:
        raise SystemExit(f"{dataset} has only {len(pool)} unused items")
    texts = [i.text for i in pool[:n_items]]

    work = Path(tempfile.mkdtemp(prefix="cmalign-bench-"))
    prefs, inp, out = work / "prefs.jsonl", work / "in.jsonl", work / "out.jsonl"
    prefs.write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n" for i in split.preference))
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    labels = work / "labels.txt"
    labels.write_text("\n".join(ds.labels.labels) + "\n")
    command(["fit", str(prefs), "--labels", str(labels), "-o", str(work / "bank.json")], work / "bank.json", None)
    shutil.copy(work / "bank.json", work / "nostate.json")

    runs = {"cm_remap": ["--bank", str(work / "bank.json"), "--method", "cm_remap"],
            "cm_best": ["--bank", str(work / "bank.json")],
            "cm_best_adapt0": ["--bank", str(work / "bank.json"), "--adapt", "0"],
            "cm_best_refit": ["--bank", str(work / "nostate.json")]}
    encoder = SentenceEncoder()
    wall: dict[str, list[float]] = {"encode": [], **{name: [] for name in runs}}
    first: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        encoder._cache.clear()
        start = time.perf_counter()
        encoder.encode(texts)
        wall["encode"].append(time.perf_counter() - start)
        for name, extra in runs.items():
            seconds, to_first = command(["annotate", str(inp), "-o", str(out), *extra], out, src)
            wall[name].append(seconds)
            first[name].append(to_first)
    median = {k: statistics.median(v) for k, v in wall.items()}
    return {
        "dataset": dataset, "items": n_items, "repeats": repeats, "preference_samples": len(split.preference),
        "code": src or "installed",
        "median_seconds": {k: round(v, 2) for k, v in median.items()},
        "median_seconds_to_first_line": {k: round(statistics.median(v), 2) for k, v in first.items()},
        "items_per_s": {k: round(n_items / s, 1) for k, s in median.items()},
        "time_ratio_to_encode": {k: round(s / median["encode"], 3) for k, s in median.items()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="clinc")
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--src", help="run `cmalign annotate` from this source folder (PYTHONPATH) instead")
    parser.add_argument("--out", type=Path, help="also write the JSON here (default: "
                        "benchmarks/results/throughput-DATASET-ITEMS.json)")
    args = parser.parse_args()
    result = run(args.dataset, args.items, args.repeats, args.src)
    result = {"date": time.strftime("%Y-%m-%d"), "threads": os.cpu_count(), **result, "provenance": provenance()}
    out = args.out or Path(__file__).parent / "results" / f"throughput-{args.dataset}-{args.items}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
