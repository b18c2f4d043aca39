"""annotate's output: never clobbered, resumed after kill -9 without labelling a finished item again,
one writer at a time, and bad output paths refused before any model loads."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cmalign.cli import main
from cmalign.data import load_bundled


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, err


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A bank (cm_remap: no state to fit) and 600 MASSIVE utterances to label."""
    root = tmp_path_factory.mktemp("job")
    ds = load_bundled("massive_scenario")
    (root / "prefs.jsonl").write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n"
                                              for i in ds.large[:300]))
    (root / "in.jsonl").write_text("".join(json.dumps({"text": i.text}) + "\n" for i in ds.small[:600]))
    assert main(["fit", str(root / "prefs.jsonl"), "-o", str(root / "bank.json"), "--method", "cm_remap"]) == 0
    return root


def annotate(job, out, *extra):
    return ["annotate", str(job / "in.jsonl"), "--bank", str(job / "bank.json"), "-o", str(out),
            "--method", "cm_remap", *extra]


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_existing_output_is_refused_unless_resumed_or_overwritten(capsys, job, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("my earlier work\n")
    code, err = run(capsys, *annotate(job, out))
    assert code == 2 and "exists already: --resume" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "my earlier work\n"
    code, err = run(capsys, *annotate(job, out, "--resume"))  # no record of the run that wrote it
    assert code == 2 and "no record of the run that wrote it" in err and out.read_text() == "my earlier work\n"
    code, err = run(capsys, *annotate(job, out, "--overwrite"))
    assert code == 0 and [r["line"] for r in rows(out)] == list(range(1, 601))


def test_resume_cuts_a_torn_line_and_labels_only_what_is_missing(capsys, job, tmp_path):
    full, out = tmp_path / "full.jsonl", tmp_path / "out.jsonl"
    assert run(capsys, *annotate(job, full))[0] == 0
    (tmp_path / "out.jsonl.cmalign-run").write_bytes((tmp_path / "full.jsonl.cmalign-run").read_bytes())
    whole = full.read_bytes()
    cut = whole.index(b"\n", len(whole) // 3) + 40  # a third of the lines and the start of the next
    out.write_bytes(whole[:cut])
    code, err = run(capsys, *annotate(job, out, "--resume"))
    kept = whole[:cut].count(b"\n")
    assert code == 0 and f"annotated {600 - kept} items ({kept} done by an earlier run)" in err
    assert out.read_bytes() == whole
    code, err = run(capsys, *annotate(job, out, "--resume"))  # nothing left: nothing asked
    assert code == 0 and "annotated 0 items (600 done by an earlier run)" in err and "0 annotator calls" in err


def test_resume_refuses_another_method_or_input(capsys, job, tmp_path):
    out = tmp_path / "out.jsonl"
    assert run(capsys, *annotate(job, out))[0] == 0
    before = out.read_bytes()
    code, err = run(capsys, *annotate(job, out, "--resume")[:-3], "--method", "cm", "--resume")
    assert code == 2 and "was written with another method ('cm_remap', now 'cm')" in err
    other = tmp_path / "other.jsonl"
    other.write_text('{"text": "something else entirely"}\n')
    code, err = run(capsys, "annotate", str(other), "--bank", str(job / "bank.json"), "-o", str(out),
                    "--method", "cm_remap", "--resume")
    assert code == 2 and "out.jsonl:1: does not match the input here" in err
    assert out.read_bytes() == before


def test_a_second_writer_is_refused_while_the_first_runs(capsys, job, tmp_path):
    out = tmp_path / "out.jsonl"
    record = os.open(tmp_path / "out.jsonl.cmalign-run", os.O_RDWR | os.O_CREAT)
    fcntl.flock(record, fcntl.LOCK_EX)  # what a running annotate holds
    try:
        code, err = run(capsys, *annotate(job, out))
        assert code == 2 and "another cmalign annotate is writing this file now" in err and not out.exists()
    finally:
        os.close(record)
    assert run(capsys, *annotate(job, out))[0] == 0


@pytest.mark.slow  # a whole process, killed: the model loads in it
def test_kill_9_then_resume_gives_every_line_once_and_labels_nothing_twice(capsys, job, tmp_path):
    full, out = tmp_path / "full.jsonl", tmp_path / "out.jsonl"
    assert run(capsys, *annotate(job, full))[0] == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "cmalign", *annotate(job, out, "--batch-size", "16")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while (not out.exists() or out.stat().st_size < 20_000) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines_before = out.read_bytes().count(b"\n")
    assert 0 < lines_before < 600, "the run was not killed mid-way"
    code, err = run(capsys, *annotate(job, out, "--resume"))
    assert code == 0 and f"annotated {600 - lines_before} items ({lines_before} done by an earlier run)" in err
    assert [r["line"] for r in rows(out)] == list(range(1, 601))
    assert rows(out) == rows(full)


def test_bad_output_paths_fail_before_any_model_loads(capsys, job, tmp_path):
    for target, problem in ((tmp_path / "missing" / "x.jsonl", "does not exist"), (tmp_path, "is a folder"),
                            (job / "in.jsonl", "is the input file itself")):
        code, err = run(capsys, *annotate(job, target, "--overwrite"))
        assert code == 2 and problem in err and len(err.strip().splitlines()) == 1
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # a special file is never replaced by a regular one
    code, err = run(capsys, "fit", str(job / "prefs.jsonl"), "-o", str(fifo))
    assert code == 2 and "not a regular file" in err and fifo.is_fifo()


def test_a_bank_written_through_a_symlink_lands_in_its_target(capsys, job, tmp_path):
    target = tmp_path / "real" / "bank.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "bank.json"
    link.symlink_to(target)
    code, err = run(capsys, "fit", str(job / "prefs.jsonl"), "-o", str(link), "--method", "cm_remap")
    assert code == 2 and "exists already: --overwrite" in err and target.read_text() == "old"  # kept
    assert run(capsys, "fit", str(job / "prefs.jsonl"), "-o", str(link), "--method", "cm_remap", "--overwrite")[0] == 0
    assert link.is_symlink() and json.loads(target.read_text())["n_samples"] == 300
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]  # nothing half-written left
