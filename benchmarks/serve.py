"""`cmalign serve` under load on loopback, beside `cmalign annotate` on the same texts and bank, and
what it learns round by round.

A bank is fitted with `cmalign fit` on a preference sample of a bundled dataset's pool; the texts
labelled are other pool items, never sent twice in one run (the server keeps the vectors of texts
it has seen, which would flatter it). Then:
  annotate   `cmalign annotate --adapt 0` as a fresh process on TEXTS texts (whole command, with
             its start-up), and its labelling alone: the same code path (the bank loaded as the job
             loads it, records a chunk of 2048 at a time) in this process, warm model, fresh texts
  serve      for each CLIENTS x TEXTS per request: CLIENTS threads, each with one keep-alive
             connection, sending `POST /v1/label` until the texts run out; requests/s, texts/s
             and each request's latency (p50, p99), from the clients' side; annotate's labelling and
             each load run alternate REPEATS times (medians kept), so the machine's noise hits all alike
  rounds     LABELS new labels a round through `POST /v1/labels`, a refit, and the accuracy of the
             served model on HELD held-back items of the evaluation split, after each round
Writes JSON to benchmarks/results/serve/ and prints a table.

    python benchmarks/serve.py --dataset clinc --texts 1024 --clients 1,8 --per-request 1,32 --repeats 2
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the command sets it: both sides measured alike
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import provenance  # noqa: E402
from serving import Server, fit_bank  # noqa: E402

from cmalign.data import Budget, load_bundled, protocol_split  # noqa: E402
from cmalign.jobs.common import Model, ModelOptions  # noqa: E402
from cmalign.method.bank import MemoryBank  # noqa: E402
from cmalign.process import default_threads, set_threads  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "serve"


def cmalign(*argv: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cmalign", *argv, "-q"], check=True)
    return time.perf_counter() - started


def command_rate(bank: Path, texts: list[str], folder: Path) -> dict:
    """``cmalign annotate --adapt 0`` on ``texts`` as a fresh process: the whole command, start-up included."""
    source = folder / "texts.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    wall = cmalign("annotate", str(source), "--bank", str(bank), "-o", str(folder / "out.jsonl"), "--adapt", "0",
                   "--overwrite")
    return {"texts": len(texts), "seconds": round(wall, 2), "texts_per_s": round(len(texts) / wall, 1)}


def labelling_rate(labeler, texts: list[str]) -> float:
    """Texts per second of annotate's labelling alone: records a chunk of 2048 at a time, fresh texts."""
    started = time.perf_counter()
    for chunk in range(0, len(texts), 2048):
        labeler.records(texts[chunk:chunk + 2048])
    return len(texts) / (time.perf_counter() - started)


def load(server: Server, texts: list[str], clients: int, per_request: int) -> dict:
    batches = iter([texts[i:i + per_request] for i in range(0, len(texts), per_request)])
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        while True:
            with lock:
                batch = next(batches, None)
            if batch is None:
                break
            body = json.dumps({"texts": batch})
            started = time.perf_counter()
            connection.request("POST", "/v1/label", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            took = time.perf_counter() - started
            with lock:
                latencies.append(took)
                if response.status != 200 or len(answer["records"]) != len(batch):
                    failures.append(f"{response.status}: {str(answer)[:200]}")
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, the first: {failures[0]}")
    cuts = statistics.quantiles(latencies, n=100)
    return {"clients": clients, "texts_per_request": per_request, "requests": len(latencies), "texts": len(texts),
            "seconds": round(wall, 2), "requests_per_s": round(len(latencies) / wall, 1),
            "texts_per_s": round(len(texts) / wall, 1), "p50_ms": round(cuts[49] * 1000, 1),
            "p99_ms": round(cuts[98] * 1000, 1)}


def rounds(server: Server, new: list, held: list, per_round: int, n_rounds: int) -> list[dict]:
    def accuracy() -> tuple[str, float]:
        right, version = 0, ""
        for start in range(0, len(held), 200):
            part = held[start:start + 200]
            answer = server("/v1/label", "POST", {"texts": [i.text for i in part]})[1]
            version = answer["model_version"]
            right += sum(r["label"] == i.label for r, i in zip(answer["records"], part))
        return version, right / len(held)

    version, acc = accuracy()
    out = [{"round": 0, "labels_given": 0, "model_version": version, "accuracy": round(acc, 4)}]
    for n in range(1, n_rounds + 1):
        labels = [{"text": i.text, "label": i.label} for i in new[(n - 1) * per_round:n * per_round]]
        status, answer = server("/v1/labels", "POST", {"labels": labels})
        assert status == 200, answer
        assert server("/v1/refit", "POST")[0] == 202
        server.wait_for(lambda m: m["counts"]["labels_learned"] == n * per_round and not m["refitting"], "refit")
        version, acc = accuracy()
        out.append({"round": n, "labels_given": n * per_round, "model_version": version, "accuracy": round(acc, 4)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="clinc")
    parser.add_argument("--texts", type=int, default=2048, help="texts labelled by each load run (fresh each run)")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--per-request", default="1,32")
    parser.add_argument("--labels-per-round", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--held", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each measure, alternating (median kept)")
    args = parser.parse_args()
    ds = load_bundled(args.dataset)
    split = protocol_split(ds, Budget(fraction=0.01), seed=0)
    clients, per_request = [int(c) for c in args.clients.split(",")], [int(p) for p in args.per_request.split(",")]
    runs = [(c, p) for c in clients for p in per_request]
    pref = {i.text for i in split.preference}
    pool = [i for i in ds.large if i.text not in pref]
    texts = list(dict.fromkeys(i.text for i in pool))
    need = args.texts * ((len(runs) + 1) * args.repeats + 2) + args.labels_per_round * args.rounds
    if len(texts) < need:
        raise SystemExit(f"{args.dataset}'s pool has {len(texts)} distinct texts; these settings need {need}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bank = fit_bank(folder, split.preference, ds.labels.labels)  # every label: rounds may bring any
        fresh = iter(range(0, len(texts), args.texts))

        def next_texts() -> list[str]:
            start = next(fresh)
            return texts[start:start + args.texts]

        command = command_rate(bank, next_texts(), folder)
        set_threads(default_threads())  # as the job sets them
        labeler = Model(ModelOptions()).labeler(MemoryBank.load(bank), bank)  # as the job loads it
        labeler.records(["a text to load the model with"])
        labelling: list[float] = []
        measured: dict[tuple[int, int], list[dict]] = {run: [] for run in runs}
        with Server(bank, "--no-access-log", "--max-texts", "1024", "--refit-after", "0") as server:
            for _ in range(args.repeats):  # alternating, so that the machine's noise hits both sides alike
                labelling.append(labelling_rate(labeler, next_texts()))
                for c, p in runs:
                    measured[(c, p)].append(load(server, next_texts(), c, p))
            annotate = {"command": command, "labelling_texts_per_s": round(statistics.median(labelling), 1),
                        "labelling_runs": [round(r, 1) for r in labelling]}
            load_runs = []
            for (c, p), results in measured.items():
                middle = sorted(results, key=lambda r: r["texts_per_s"])[len(results) // 2]
                load_runs.append(middle | {"vs_annotate_labelling": round(
                    middle["texts_per_s"] / annotate["labelling_texts_per_s"], 2),
                    "texts_per_s_runs": [r["texts_per_s"] for r in results]})
            start = next(fresh)
            by_text = {i.text: i for i in pool}
            new = [by_text[t] for t in texts[start:start + args.labels_per_round * args.rounds]]
            learning = rounds(server, new, split.evaluation[:args.held], args.labels_per_round, args.rounds)
    result = {"dataset": args.dataset, "bank_samples": len(split.preference), "threads": default_threads(),
              "cores": os.cpu_count(), "annotate": annotate, "serve": load_runs, "rounds": learning,
              "held_back": min(args.held, len(split.evaluation)), "provenance": provenance()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"serve-{args.dataset}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))


def table(result: dict) -> str:
    """The load runs beside annotate's labelling, then the accuracy after each round of new labels."""
    annotate, command = result["annotate"], result["annotate"]["command"]
    lines = [f"`{result['dataset']}`, a bank of {result['bank_samples']} labels, {result['threads']} encoding thread(s) on "
             f"{result['cores']} cores. `annotate --adapt 0` labels {annotate['labelling_texts_per_s']} texts/s "
             f"(its labelling, warm;\n{command['texts_per_s']} for the whole command with its start-up), "
             f"{command['texts']} fresh texts a run; medians of {len(annotate['labelling_runs'])} alternating runs:",
             "", "| clients | texts / request | requests/s | texts/s | p50 ms | p99 ms | texts/s / annotate's |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['clients']} | {r['texts_per_request']} | {r['requests_per_s']} | {r['texts_per_s']} | "
              f"{r['p50_ms']} | {r['p99_ms']} | {r['vs_annotate_labelling']:.2f} |" for r in result["serve"]]
    lines += ["", f"Accuracy of the served model on {result['held_back']} held-back items after each round of new "
                  "labels (`POST /v1/labels`, then a refit):", "",
              "| labels added | model version | accuracy |", "|---:|---|---:|"]
    lines += [f"| {r['labels_given']} | `{r['model_version']}` | {r['accuracy']:.3f} |" for r in result["rounds"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
