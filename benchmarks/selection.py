"""Does choosing what the user labels beat the paper's random sample? And does `review` find wrong labels?

Selection: for each dataset with a pool (``large``), budget and seed, the preference sample is drawn by
each selector (``cmalign.evaluation.bench.selected_split``, what ``cmalign bench --select`` runs; the
gold labels stand in for the user) and the annotator alone, kNN, the regression and ``cm_best`` are
fitted on it and scored on ``small``. One JSON object per run, then the mean over seeds per
(dataset, budget, selector) with ``cm_best``'s gain over ``random``.

Review (``--review``): a 5% random preference sample with 10% of its labels flipped to another label
(seeded); the share of the flipped samples among the first 2 x (number flipped) preference samples
of ``cmalign review``'s ranking (out-of-fold ``cm_best``, as the command runs it).

    python benchmarks/selection.py --out benchmarks/results/selection.jsonl   # four datasets, 1% and 5%, seeds 0, 1
    python benchmarks/selection.py --review --out benchmarks/results/review.jsonl
    python benchmarks/selection.py --datasets banking77 --budgets 0.01 --selectors random,cover

``--embeddings DIR`` keeps each dataset's embeddings in DIR (``<dataset>.npz``, keyed by the
encoder's identity) so a second run does not encode them again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from provenance import provenance

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cmalign.annotators.embedding import EmbeddingAnnotator  # noqa: E402
from cmalign.data import Budget, load_bundled, protocol_split  # noqa: E402
from cmalign.encoder import SentenceEncoder  # noqa: E402
from cmalign.evaluation.bench import _run_methods, selected_split  # noqa: E402
from cmalign.review import out_of_fold  # noqa: E402

METHODS = ("base", "knn", "logreg", "cm_best")


def warm(encoder: SentenceEncoder, name: str, folder: Path | None) -> None:
    """Put the dataset's embeddings in the encoder's cache (from ``folder`` when saved there)."""
    ds = load_bundled(name)
    texts = list(dict.fromkeys(i.text for i in (*(ds.large or ()), *ds.small)))
    encoder.reserve(len(encoder._cache) + len(texts))
    path = folder / f"{name}.npz" if folder else None
    if path is not None and path.exists():
        saved = np.load(path)
        if str(saved["identity"]) == encoder.identity and len(saved["vectors"]) == len(texts):
            encoder._cache.update(zip(texts, saved["vectors"]))
            return
    vectors = encoder.encode(texts)
    if path is not None:
        np.savez(path, identity=np.array(encoder.identity), vectors=vectors)


def _keep(args, row: dict, source: dict) -> None:
    """Print ``row`` and append it, with where it came from, to ``args.out``."""
    print(json.dumps(row), flush=True)
    if args.out is not None:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({**row, "provenance": source}) + "\n")


def selection(args, encoder: SentenceEncoder, annotator: EmbeddingAnnotator) -> None:
    results = []
    source = provenance()
    for name in args.datasets.split(","):
        ds = load_bundled(name)
        warm(encoder, name, args.embeddings)
        for budget in args.budgets.split(","):
            for seed in (0, 1):
                for selector in args.selectors.split(","):
                    started = time.perf_counter()
                    split = selected_split(ds, Budget.parse(budget), seed, selector, annotator, encoder)
                    chosen_in = time.perf_counter() - started
                    scores = _run_methods(split, ds.labels, annotator, encoder, METHODS)
                    row = {"dataset": name, "budget": budget, "seed": seed, "selection": selector,
                           "labels_covered": len({i.label for i in split.preference}), "labels": len(ds.labels),
                           "select_s": round(chosen_in, 1), **{m: round(scores[m].accuracy, 4) for m in METHODS}}
                    results.append(row)
                    _keep(args, row, source)
    groups: dict[tuple, list] = {}
    for row in results:
        groups.setdefault((row["dataset"], row["budget"], row["selection"]), []).append(row)
    for (name, budget, selector), rows in groups.items():
        mean = {m: statistics.fmean(r[m] for r in rows) for m in (*METHODS, "labels_covered")}
        random = groups.get((name, budget, "random"))
        gain = None if random is None else mean["cm_best"] - statistics.fmean(r["cm_best"] for r in random)
        _keep(args, {"dataset": name, "budget": budget, "selection": selector, "mean_of_seeds": len(rows),
                     **{k: round(v, 4) for k, v in mean.items()},
                     "cm_best_gain_over_random": None if gain is None else round(gain, 4)}, source)


def review(args, encoder: SentenceEncoder, annotator: EmbeddingAnnotator) -> None:
    source = provenance()
    for name in args.datasets.split(","):
        ds = load_bundled(name)
        warm(encoder, name, args.embeddings)
        for seed in (0, 1):
            split = protocol_split(ds, Budget.parse("0.05"), seed)
            texts, y = [i.text for i in split.preference], [i.label for i in split.preference]
            rng = np.random.default_rng([seed, 99])
            flipped = rng.choice(len(y), size=round(0.1 * len(y)), replace=False)
            labels = ds.labels.labels
            for i in flipped:
                y[i] = labels[(labels.index(y[i]) + int(rng.integers(1, len(labels)))) % len(labels)]
            started = time.perf_counter()
            probs = out_of_fold("cm_best", annotator, encoder, texts, y, ds.labels)
            given = probs[np.arange(len(y)), [ds.labels.index(label) for label in y]]
            top = set(np.argsort(given, kind="stable")[:2 * len(flipped)].tolist())
            _keep(args, {"dataset": name, "seed": seed, "preference": len(y), "flipped": len(flipped),
                         "found_in_top_2x": round(len(top & set(flipped.tolist())) / len(flipped), 3),
                         "seconds": round(time.perf_counter() - started, 1)}, source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="banking77,clinc,massive_scenario,mtop_intent")
    parser.add_argument("--budgets", default="0.01,0.05")
    parser.add_argument("--selectors", default="random,cover,uncertain")
    parser.add_argument("--review", action="store_true", help="measure review instead of selection")
    parser.add_argument("--embeddings", type=Path, help="folder to keep the datasets' embeddings in")
    parser.add_argument("--out", type=Path, help="append each JSON line, with its provenance, to this file "
                        "(benchmarks/results/selection.jsonl or review.jsonl is what the docs render)")
    args = parser.parse_args()
    encoder = SentenceEncoder()
    annotator = EmbeddingAnnotator(encoder)
    (review if args.review else selection)(args, encoder, annotator)


if __name__ == "__main__":
    main()
