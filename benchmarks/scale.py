"""Labelling a large corpus: memory and speed of the whole `cmalign annotate` command as it grows.

For each size N (default 10k, 100k, 1M), N distinct items are made from the bundled texts (a text
of the five datasets followed by the first word of another, repeats skipped, so that no two items
are the same and no cache can help, and the items stay as short as the datasets' own), and `cmalign annotate` (default method, cm_best, from its saved state; a bank fitted on a 5%
preference sample of CLINC) labels them as a fresh process. Printed as JSON, one object per size:
  peak_rss_mb          the process's peak resident memory (from the kernel, wait4)
  items_per_s          N / the whole command's wall time (start, model load, label, write)
  loop_items_per_s     the labelling loop: items after the first chunk / time after the first line
  seconds_to_first_line
  learn_seconds, label_items_per_s   from annotate's closing line: cm_best's fixed learning step (a
                       sample of the input, the cross-fits, the final refit) and the rate of the
                       labelling after it, in the command's own clock
  encode_items_per_s   raw encoding of the first 10,000 of the same items by the same model, in this
                       process (model loaded, empty cache): the floor of what labelling costs
  ratio_to_encode      items_per_s / encode_items_per_s
  encode_command_items_per_s, ratio_to_encode_command   (sizes up to 10k) raw encoding as a whole
                       command too: a fresh process that loads the model, reads the same file and
                       encodes every text, so both sides pay for starting Python and loading the model
Threads: the command runs with its defaults; set OMP_NUM_THREADS etc. around this script to try others.

    python benchmarks/scale.py --sizes 10000,100000,1000000

A run too long for one sitting can go on where it stopped: `--work DIR --resume` finds the
corpus and the partial output of a size in DIR and runs `annotate --resume` on it. That line then
describes the resumed process alone: "resumed_from" items were already written, and its peak RSS,
speed and time to the first new line are those of the items it labelled.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from provenance import provenance

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the command sets it: both sides measured alike

from cmalign import __version__
from cmalign.data import Budget, bundled_names, load_bundled, protocol_split
from cmalign.embedders import DEFAULT, make_embedder
from cmalign.encoder import SentenceEncoder
from cmalign.process import threads

RESULTS = Path(__file__).parent / "results"


def corpus_texts() -> list[str]:
    """Every distinct text of the bundled datasets, in a fixed order."""
    texts: dict[str, None] = {}
    for name in bundled_names():
        ds = load_bundled(name)
        for item in (*(ds.large or ()), *ds.small):
            texts.setdefault(item.text.strip(), None)
    return list(texts)


def write_corpus(path: Path, texts: list[str], n: int, seed: int = 0) -> None:
    """``n`` distinct items, each a text followed by the first word of another (seeded)."""
    rng = np.random.default_rng(seed)
    firsts = [t.split()[0] for t in texts]
    seen: set[str] = set()
    with open(path, "w", encoding="utf-8") as handle:
        while len(seen) < n:
            for a, b in rng.integers(len(texts), size=(min(n - len(seen), 100_000), 2)):
                text = f"{texts[a]} {firsts[b]}"
                if text not in seen:
                    seen.add(text)
                    handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")


RAW_ENCODE = """
import json, sys
from cmalign.embedders import make_embedder
from cmalign.encoder import SentenceEncoder
encoder = SentenceEncoder(make_embedder(sys.argv[2]))
with open(sys.argv[1], encoding="utf-8") as handle:
    encoder.encode([json.loads(line)["text"] for line in handle])
"""


def learning(closing: str) -> dict:
    """The learning step's seconds and the labelling rate after it, as annotate's closing line states them."""
    found = re.search(r"; ([\d.]+)s of it learning from a sample of the input, then (\d+) items/s labelling", closing)
    return {"learn_seconds": float(found[1]), "label_items_per_s": float(found[2])} if found else {}


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def measure(argv: list[str], out: Path, program: tuple[str, ...] = ("-m", "cmalign"), keep: bool = False) -> dict:
    """Wall time, time to the first complete new output line and peak RSS of ``python -m cmalign argv``.

    With ``keep`` the output already holds lines (a resumed run): the first line is the first one
    written after them."""
    if not keep:
        out.unlink(missing_ok=True)
    before = out.stat().st_size if keep and out.exists() else 0
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *program, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    first = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if first is None and out.exists() and out.stat().st_size > before:
            with open(out, "rb") as handle:
                handle.seek(before)
                if b"\n" in handle.read(65536):
                    first = time.perf_counter() - start
        time.sleep(0.02)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"cmalign {' '.join(argv)} failed: {err}")
    return {"wall": wall, "first": first if first is not None else wall, "peak_rss_mb": usage.ru_maxrss / 1024,
            "stderr": err.strip().splitlines()[-2:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--work", help="folder for the corpora and outputs (default: a new temporary one)")
    parser.add_argument("--batch-size", type=int, default=2048, help="annotate's chunk size")
    parser.add_argument("--resume", action="store_true",
                        help="go on with the partial outputs an earlier run left in --work")
    parser.add_argument("--encoder", default=DEFAULT, help="the sentence encoder (fit, annotate and raw encoding)")
    parser.add_argument("--out", type=Path, help="append each size's JSON line here too (default: "
                        "benchmarks/results/scale-ENCODER.jsonl)")
    args = parser.parse_args()
    results = args.out or RESULTS / f"scale-{args.encoder.replace('/', '_').replace(':', '_')}.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    if args.resume:
        if not args.work:
            parser.error("--resume needs the --work folder of the earlier run")
        resume(Path(args.work), [int(s) for s in args.sizes.split(",")], args.batch_size, args.encoder, results)
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="cmalign-scale-"))
    work.mkdir(parents=True, exist_ok=True)

    ds = load_bundled("clinc")
    split = protocol_split(ds, Budget(fraction=0.05), seed=0)
    (work / "prefs.jsonl").write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n"
                                              for i in split.preference))
    (work / "labels.txt").write_text("\n".join(ds.labels.labels) + "\n")
    measure(["fit", str(work / "prefs.jsonl"), "--labels", str(work / "labels.txt"), "-o", str(work / "bank.json"),
             "--encoder", args.encoder, "--overwrite"], work / "bank.json")  # a --work folder used before
    texts = corpus_texts()
    encoder = SentenceEncoder(make_embedder(args.encoder))
    for n in (int(s) for s in args.sizes.split(",")):
        inp, out = work / f"in-{n}.jsonl", work / f"out-{n}.jsonl"
        write_corpus(inp, texts, n)
        with open(inp, encoding="utf-8") as handle:
            sample = [json.loads(next(handle))["text"] for _ in range(min(n, 10_000))]
        encoder._cache.clear()
        start = time.perf_counter()
        encoder.encode(sample)
        encode_rate = len(sample) / (time.perf_counter() - start)
        encoder._cache.clear()
        run = measure(["annotate", str(inp), "--bank", str(work / "bank.json"), "-o", str(out),
                       "--batch-size", str(args.batch_size), "--encoder", args.encoder], out)
        rate = n / run["wall"]
        loop = (n - min(n, args.batch_size)) / max(run["wall"] - run["first"], 1e-9)
        row = {"items": n, "encoder": encoder.identity, "threads": threads(), "peak_rss_mb": round(run["peak_rss_mb"], 1), "items_per_s": round(rate, 1),
               "loop_items_per_s": round(loop, 1), "seconds_to_first_line": round(run["first"], 1),
               "wall_seconds": round(run["wall"], 1), "encode_items_per_s": round(encode_rate, 1),
               "ratio_to_encode": round(rate / encode_rate, 3)}
        if n <= 10_000:
            raw = measure([str(inp), args.encoder], out, program=("-c", RAW_ENCODE))
            row |= {"encode_command_items_per_s": round(n / raw["wall"], 1),
                    "ratio_to_encode_command": round(raw["wall"] / run["wall"], 3),
                    "encode_command_peak_rss_mb": round(raw["peak_rss_mb"], 1)}
        record(row | learning(run["stderr"][-2]) | {"cmalign": run["stderr"][-2]}, results)
        if not args.work:  # a run in a folder of its own keeps its corpus and output (to resume)
            out.unlink(missing_ok=True)
            inp.unlink(missing_ok=True)


def record(row: dict, results: Path) -> None:
    """Print ``row`` as a JSON line and append it to ``results``, with the date and the code's version."""
    row = {"date": time.strftime("%Y-%m-%d"), "cmalign": __version__, **row, "provenance": provenance()} \
        if "date" not in row else row
    line = json.dumps(row)
    print(line, flush=True)
    with open(results, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def resume(work: Path, sizes: list[int], batch_size: int, encoder: str, results: Path) -> None:
    """Finish the partial outputs of an earlier run in ``work``, one fresh process each."""
    for n in sizes:
        inp, out = work / f"in-{n}.jsonl", work / f"out-{n}.jsonl"
        if not (inp.exists() and out.exists() and (work / "bank.json").exists()):
            raise SystemExit(f"{work}: no partial run of {n} items to resume")
        done = count_lines(out)
        run = measure(["annotate", str(inp), "--bank", str(work / "bank.json"), "-o", str(out),
                       "--batch-size", str(batch_size), "--resume", "--encoder", encoder], out, keep=True)
        total = count_lines(out)
        if total != n:
            raise SystemExit(f"{out}: {total} lines after the resumed run, expected {n}")
        new = n - done
        record({"items": n, "encoder": encoder, "resumed_from": done, "labelled_now": new,
                          "peak_rss_mb": round(run["peak_rss_mb"], 1),
                          "items_per_s": round(new / run["wall"], 1),
                          "loop_items_per_s": round((new - min(new, batch_size)) / max(run["wall"] - run["first"], 1e-9), 1),
                          "seconds_to_first_line": round(run["first"], 1), "wall_seconds": round(run["wall"], 1),
                "said": run["stderr"][-2] if len(run["stderr"]) > 1 else run["stderr"]}, results)


if __name__ == "__main__":
    main()
