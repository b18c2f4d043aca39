"""The command line a user tries first: pipes, output formats by suffix, their own columns kept,
labelling rounds, progress in a log file, a label set that outlives the labels used."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from cmalign.cli import main
from cmalign.data import load_bundled
from cmalign.method.bank import MemoryBank


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A cm_remap bank fitted on 300 MASSIVE labels, and 200 items to label with an id and a gold label."""
    root = tmp_path_factory.mktemp("commands")
    ds = load_bundled("massive_scenario")
    (root / "prefs.jsonl").write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n"
                                              for i in ds.large[:300]))
    (root / "in.jsonl").write_text("".join(json.dumps({"id": f"t{n}", "text": i.text, "gold": i.label}) + "\n"
                                           for n, i in enumerate(ds.small[:200])))
    assert main(["fit", str(root / "prefs.jsonl"), "-o", str(root / "bank.json"), "--method", "cm_remap"]) == 0
    return root


def annotate(job, out, *extra):
    return ["annotate", job / "in.jsonl", "--bank", job / "bank.json", "-o", out, "--method", "cm_remap", *extra]


def test_a_pipe_in_and_out_and_head_closing_it(job):
    shell = (f"cat {job / 'in.jsonl'} | {sys.executable} -m cmalign annotate - --bank {job / 'bank.json'} "
             "--method cm_remap -o - | head -3")
    proc = subprocess.run(["bash", "-c", "set -o pipefail; " + shell], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3] and [r["id"] for r in rows] == ["t0", "t1", "t2"]
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr
    assert not list(job.glob("*.cmalign-run*")) and not (job / "-").exists()


def test_stdin_errors_name_stdin_and_stdout_cannot_resume(job, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"text": "ok"}\n{"text": ""}\n')))
    code, out, err = run(capsys, "annotate", "-", "--bank", job / "bank.json", "-o", "-", "--method", "cm_remap")
    assert code == 2 and "<stdin>:2: the text field 'text' is empty" in err and out == ""
    code, _, err = run(capsys, *annotate(job, "-", "--resume"))
    assert code == 2 and "cannot be resumed" in err and "--resume" not in err.split("error:")[0]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_the_output_suffix_is_the_format_and_the_input_columns_are_kept(job, tmp_path, capsys, suffix):
    out = tmp_path / f"out{suffix}"
    code, _, err = run(capsys, *annotate(job, out))
    assert code == 0, err
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
    elif suffix == ".jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        with open(out, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    assert len(rows) == 200 and [r["id"] for r in rows] == [f"t{n}" for n in range(200)]
    assert all(r["gold"] and r["label"] for r in rows)
    assert [int(r["line"]) for r in rows] == list(range(1, 201))
    kept = [out.name + ".cmalign-run"] if suffix == ".jsonl" else []  # JSONL resumes in place: its record stays
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, *kept])  # no partial file left


def test_fields_chooses_the_columns_carried_and_a_clash_is_renamed(job, tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text('{"text": "wake me up at six", "label": "alarm", "id": 1, "note": "x"}\n')
    out = tmp_path / "out.jsonl"
    assert run(capsys, "annotate", tmp_path / "in.jsonl", "--bank", job / "bank.json", "-o", out,
               "--method", "cm_remap")[0] == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["input_label"] == "alarm" and row["id"] == 1 and row["note"] == "x" and "label" in row
    assert run(capsys, "annotate", tmp_path / "in.jsonl", "--bank", job / "bank.json", "-o", out, "--overwrite",
               "--method", "cm_remap", "--fields", "id")[0] == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["id"] == 1 and "note" not in row and "input_label" not in row


def test_an_unknown_output_suffix_is_refused_before_anything(job, tmp_path, capsys):
    code, _, err = run(capsys, *annotate(job, tmp_path / "out.txt"))
    assert code == 2 and "unknown output type '.txt'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "select", job / "in.jsonl", "--n", "5", "-o", tmp_path / "s.txt")
    assert code == 2 and "unknown output type '.txt'" in err and len(err.strip().splitlines()) == 1


def test_two_labelling_rounds_keep_both_and_never_offer_an_item_twice(job, tmp_path, capsys):
    ds = load_bundled("massive_scenario")
    gold = {i.text: i.label for i in ds.large[:800]}
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t, "id": n}) + "\n" for n, t in enumerate(gold)))

    def label(path):  # the user fills in the label of each chosen item
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(r | {"label": gold[r["text"]]}) + "\n" for r in rows))
        return {r["text"] for r in rows}

    r1, r2, bank = tmp_path / "round1.jsonl", tmp_path / "round2.jsonl", tmp_path / "bank.json"
    assert run(capsys, "select", pool, "--n", "40", "-o", r1)[0] == 0
    first = label(r1)
    assert run(capsys, "fit", r1, "-o", bank, "--method", "cm_remap")[0] == 0
    code, _, err = run(capsys, "select", pool, "--n", "40", "-o", r2, "--bank", bank, "--method", "cm_remap")
    assert code == 0 and "EARLIER_ROUNDS..." in err
    second = label(r2)
    assert len(second) == 40 and not first & second
    assert run(capsys, "fit", r1, r2, "-o", bank, "--overwrite", "--method", "cm_remap")[0] == 0
    both = MemoryBank.load(bank)
    assert {s.text for s in both.samples} == first | second and len(both.samples) == 80
    assert all(gold[s.text] == s.label for s in both.samples)
    third = tmp_path / "round3.jsonl"
    assert run(capsys, "select", pool, "--n", "40", "-o", third, "--bank", bank, "--method", "cm_remap")[0] == 0
    assert not label(third) & (first | second)


def test_progress_lines_reach_a_log_file_while_annotate_runs(job, tmp_path):
    log = tmp_path / "run.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", CMALIGN_PROGRESS_SECONDS="0")
    with open(log, "w") as handle:
        proc = subprocess.run([sys.executable, "-m", "cmalign", *map(str, annotate(job, tmp_path / "out.jsonl")),
                               "--batch-size", "50"], stdout=subprocess.DEVNULL, stderr=handle, env=env, timeout=300)
    assert proc.returncode == 0
    lines = log.read_text().splitlines()
    assert "loading the model" in lines and "labelling 200 items with cm_remap" in lines
    counts = [line for line in lines if line.startswith("annotate: ")]
    assert [c.split()[1] for c in counts[:4]] == ["50/200", "100/200", "150/200", "200/200"]
    assert "items/s" in counts[0] and "left" in counts[0] and "\r" not in log.read_text()
    quiet = subprocess.run([sys.executable, "-m", "cmalign", *map(str, annotate(job, tmp_path / "q.jsonl")), "-q"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_the_label_studio_export_lists_the_bank_s_whole_label_set(job, tmp_path, capsys):
    out = tmp_path / "few.jsonl"
    out.write_text('{"text": "wake me up", "label": "alarm"}\n{"text": "play jazz", "label": "play"}\n')
    tasks = tmp_path / "tasks.json"
    assert run(capsys, "export", out, "-o", tasks, "--bank", job / "bank.json")[0] == 0
    config = (tmp_path / "tasks.label-config.xml").read_text()
    labels = MemoryBank.load(job / "bank.json").labels.labels
    assert len(labels) == 18 and all(f'value="{label}"' in config for label in labels)


def test_a_setting_in_an_error_is_the_flag_the_user_typed(job, tmp_path, capsys):
    code, _, err = run(capsys, *annotate(job, tmp_path / "o.jsonl", "--adapt", "-1"))
    assert code == 2 and "--adapt -1: must be at least 0" in err
    code, _, err = run(capsys, "review", "--bank", job / "bank.json", "-o", tmp_path / "r.jsonl", "--folds", "0")
    assert code == 2 and "--folds 0: must be at least 2" in err
