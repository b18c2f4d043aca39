"""How much CM costs on top of the model: `cmalign annotate` throughput beside raw encoding.

Takes N items of a bundled dataset's pool (not used for the bank), fits a bank on a 5% preference
sample, then, REPEATS times and alternating so machine noise hits both alike:
  encode    the raw sentence-embedding throughput of the same model on the same texts
  cm_remap  the whole `cmalign annotate --method cm_remap` (read file, load model, bank lookup,
            re-ask, write JSONL)
  cm_best   the whole `cmalign annotate` with its default, the combined model (which also fits
            itself on the bank's preference samples)
Every repeat starts with an empty embedding cache. Prints JSON: medians and ratios to `encode`.

    python benchmarks/throughput.py --dataset clinc --items 10000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from cmalign import ConsistentMarginalization, EmbeddingAnnotator, SentenceEncoder
from cmalign.cli import main as cli_main
from cmalign.data import Budget, load_bundled, protocol_split


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(dataset: str, n_items: int, repeats: int) -> dict:
    ds = load_bundled(dataset)
    split = protocol_split(ds, Budget(fraction=0.05), seed=0)
    used = {i.line for i in split.preference}
    pool = [i for i in (ds.large or ds.small) if i.line not in used]
    if len(pool) < n_items:
        raise SystemExit(f"{dataset} has only {len(pool)} unused items")
    texts = [i.text for i in pool[:n_items]]

    encoder = SentenceEncoder()
    cm = ConsistentMarginalization(EmbeddingAnnotator(encoder)).fit(
        [i.text for i in split.preference], [i.label for i in split.preference], label_set=ds.labels)
    workdir = Path(tempfile.mkdtemp(prefix="cmalign-bench-"))
    bank, inp, out = workdir / "bank.json", workdir / "in.jsonl", workdir / "out.jsonl"
    cm.bank_.save(bank)
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")

    seconds: dict[str, list[float]] = {"encode": [], "cm_remap": [], "cm_best": []}
    for _ in range(repeats):
        encoder._cache.clear()
        seconds["encode"].append(timed(lambda: encoder.encode(texts)))
        for method in ("cm_remap", "cm_best"):  # each CLI run loads its own model: a cold cache
            argv = ["annotate", str(inp), "--bank", str(bank), "-o", str(out), "--method", method]
            seconds[method].append(timed(partial(cli_main, argv)))
    medians = {k: statistics.median(v) for k, v in seconds.items()}
    return {
        "dataset": dataset, "items": n_items, "repeats": repeats,
        "items_per_s": {k: round(n_items / s, 1) for k, s in medians.items()},
        "time_ratio_to_encode": {k: round(s / medians["encode"], 3) for k, s in medians.items()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="clinc")
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.dataset, args.items, args.repeats), indent=1))
