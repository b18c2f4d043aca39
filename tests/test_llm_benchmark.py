"""benchmarks/llm_strategies.py on a small setting with the tests' real LLM (SmolLM2 behind llama.cpp's
server): its run is kept in the response cache, so running it again from the cache alone (no server)
sends no request and writes the same JSON byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "llm_strategies.py"


def run(*argv: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_a_second_run_from_the_cache_sends_nothing_and_writes_the_same_json(smollm2_path, tmp_path):
    out, cache = tmp_path / "smol.json", tmp_path / "smol.sqlite"
    common = ["--gguf", str(smollm2_path), "--settings", "massive_scenario:n=10", "--seeds", "0", "--limit", "4",
              "--strategies", "vanilla,score", "--out", str(out), "--cache", str(cache), "--threads", "2"]
    first = run(*common)
    data = json.loads(out.read_text())
    runs = data["runs"]
    assert sorted(runs) == ["massive_scenario:n=10:seed=0:score:limit=4", "massive_scenario:n=10:seed=0:vanilla:limit=4"]
    vanilla = runs["massive_scenario:n=10:seed=0:vanilla:limit=4"]
    assert vanilla["requests_sent"] > 0 and vanilla["result"]["n_eval"] == 4
    assert {"vanilla", "vanilla+cm", "vanilla+cm_remap", "vanilla+cm_best", "knn", "logreg"} <= set(
        vanilla["result"]["methods"])
    assert "| massive_scenario | n=10 | vanilla | 1 |" in first.stdout  # the table printed
    # what the scorer's letters read as, from its replies in the cache: one per text it scored
    letters = data["letters"]["massive_scenario"]
    scored = runs["massive_scenario:n=10:seed=0:score:limit=4"]["result"]
    assert letters["replies"] == scored["n_preference"] + scored["n_eval"]
    assert set(letters["likeliest_letter_share"]) <= set("ABCDEFGHIJKLMNOPQR")
    assert 0 < sum(letters["likeliest_letter_share"].values()) <= 1.0
    assert 0 <= letters["accuracy_calibrated"] <= 1  # the content-free texts' replies are in the cache too
    before = out.read_bytes()

    second = run(*common, "--cached-only")
    assert out.read_bytes() == before
    assert "0 requests sent" in second.stderr and "requests sent" in second.stderr
    assert all(line.endswith(" 0 requests sent") for line in second.stderr.splitlines() if "requests sent" in line)

    # what the paper's rule did, per action, adds up to the evaluation items; shown under the table
    actions = vanilla["result"]["methods"]["vanilla+cm"]["actions"]
    assert sum(a["n"] for a in actions.values()) == 4
    assert "What the paper's rule did" in first.stdout
    # a record without that breakdown gains it from the cache, keeping the time of the run that sent
    for run_record in data["runs"].values():
        run_record["wall_seconds"] = 12345.0
        for m in run_record["result"]["methods"].values():
            m.pop("actions", None)
    out.write_text(json.dumps(data))
    run(*common, "--cached-only")
    again = json.loads(out.read_text())["runs"]["massive_scenario:n=10:seed=0:vanilla:limit=4"]
    assert again["result"]["methods"]["vanilla+cm"]["actions"] == actions and again["wall_seconds"] == 12345.0


def test_a_cached_only_run_with_an_answer_missing_fails_and_keeps_the_json(smollm2_path, tmp_path):
    out = tmp_path / "smol.json"
    out.write_text('{"runs": {}}\n')
    proc = subprocess.run([sys.executable, str(SCRIPT), "--gguf", str(smollm2_path), "--settings",
                           "massive_scenario:n=10", "--seeds", "0", "--limit", "4", "--strategies", "vanilla",
                           "--out", str(out), "--cache", str(tmp_path / "empty.sqlite"), "--cached-only"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "failed" in proc.stderr
    assert out.read_text() == '{"runs": {}}\n'


def test_two_models_are_shown_side_by_side_on_the_runs_they_share():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from llm_strategies import side_by_side
    finally:
        sys.path.remove(str(SCRIPT.parent))
    results = SCRIPT.parent / "results" / "llm"
    small, large = (json.loads((results / f"qwen2.5-coder-{size}.json").read_text()) for size in ("0.5b", "1.5b"))
    shared = sorted(set(small["runs"]) & set(large["runs"]))
    assert shared  # the committed results measure both models on one run at least
    rows = side_by_side([small, large]).splitlines()[2:]
    assert len(rows) == 2 * len(shared)
    for i, row in enumerate(rows):  # each shared run, the smaller model first
        data = (small, large)[i % 2]
        cells = [c.strip() for c in row.strip("|").split("|")]
        run = data["runs"][shared[i // 2]]["result"]
        x = "base" if cells[3] == "score" else cells[3]  # a scorer's own answer is its "base"
        assert cells[4] == data["model"] and float(cells[5]) == round(run["methods"][x]["accuracy"], 3)
    assert side_by_side([small, {"model": "other", "runs": {}}]) is None
