"""Nothing a user has is lost: an output is never an input, files kept beside another are never
written through a link, a replacement takes the old file's place only once whole, a killed write's
temporary file is cleaned up, and no CSV cell runs as a spreadsheet formula."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from cmalign.cli import main
from cmalign.data import load_bundled, read_items
from cmalign.data.fields import Item
from cmalign.files import write_atomically
from cmalign.method.base import Record
from cmalign.output import LabelledOutput


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    ds = load_bundled("massive_scenario")
    (root / "prefs.jsonl").write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n"
                                              for i in ds.large[:200]))
    (root / "in.jsonl").write_text("".join(json.dumps({"text": i.text}) + "\n" for i in ds.small[:50]))
    assert main(["fit", str(root / "prefs.jsonl"), "-o", str(root / "bank.json"), "--method", "cm_remap"]) == 0
    out = root / "out.jsonl"
    assert main(["annotate", str(root / "in.jsonl"), "--bank", str(root / "bank.json"), "-o", str(out),
                 "--method", "cm_remap"]) == 0
    return root


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("argv, victim", [
    (["fit", "{prefs}", "-o", "{prefs}"], "prefs"),
    (["select", "{inp}", "--n", "5", "-o", "{inp}"], "inp"),
    (["review", "--bank", "{bank}", "-o", "{bank}"], "bank"),
    (["report", "--bank", "{bank}", "-o", "{bank}"], "bank"),
    (["report", "--bank", "{bank}", "--labelled", "{out}", "-o", "{out}"], "out"),
    (["annotate", "{inp}", "--bank", "{bank}", "-o", "{bank}"], "bank"),
    (["export", "{out}", "-o", "{out}"], "out"),
])
def test_an_output_that_is_an_input_is_refused_even_with_overwrite(job, capsys, argv, victim):
    paths = {"prefs": job / "prefs.jsonl", "inp": job / "in.jsonl", "bank": job / "bank.json", "out": job / "out.jsonl"}
    before = snapshot(job)
    code, err = run(capsys, *[a.format(**paths) for a in argv], "--overwrite")
    assert code == 2 and "is the input file itself" in err and len(err.strip().splitlines()) == 1
    assert snapshot(job) == before


def test_a_hard_link_to_the_input_is_the_input(job, tmp_path, capsys):
    hard = tmp_path / "hard.jsonl"
    os.link(job / "in.jsonl", hard)
    before = hard.read_bytes()
    code, err = run(capsys, "annotate", job / "in.jsonl", "--bank", job / "bank.json", "-o", hard, "--overwrite",
                    "--method", "cm_remap")
    assert code == 2 and "is the input file itself" in err and hard.read_bytes() == before


def test_a_state_file_is_never_written_through_a_symlink(job, tmp_path, capsys):
    notes = tmp_path / "elsewhere" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("my notes\n")
    (tmp_path / "bank.cm_best.npz").symlink_to(notes)
    code, err = run(capsys, "fit", job / "prefs.jsonl", "-o", tmp_path / "bank.json")
    assert code == 2 and "bank.cm_best.npz: is a symbolic link" in err
    assert notes.read_text() == "my notes\n" and not (tmp_path / "bank.json").exists()


def test_a_state_file_left_without_its_bank_is_not_replaced_unasked(job, tmp_path, capsys):
    (tmp_path / "bank.cm_best.npz").write_bytes(b"an older state")
    code, err = run(capsys, "fit", job / "prefs.jsonl", "-o", tmp_path / "bank.json")
    assert code == 2 and "bank.cm_best.npz: exists already: --overwrite" in err
    assert (tmp_path / "bank.cm_best.npz").read_bytes() == b"an older state"


def test_the_run_record_is_never_written_through_a_symlink(job, tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (tmp_path / "out.jsonl.cmalign-run").symlink_to(target)
    code, err = run(capsys, "annotate", job / "in.jsonl", "--bank", job / "bank.json", "-o", tmp_path / "out.jsonl",
                    "--method", "cm_remap")
    assert code == 2 and "is a symbolic link" in err and target.read_text() == "keep me\n"


def test_an_overwrite_that_fails_keeps_the_old_output_whole(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("earlier line 1\nearlier line 2\n")
    items = [Item(f"text {n}", None, n) for n in range(1, 4)]
    with LabelledOutput(out, overwrite=True) as output:
        output.claim(tmp_path / "in.jsonl")
        output.start(iter(items), {"bank": "b"})
        output.write(items[:2], [Record(label="a")] * 2, "cm")
        assert out.read_text() == "earlier line 1\nearlier line 2\n"  # nothing replaced while it runs
        # the run fails here (an HTTP 429, a signal): finish() is never reached
    assert out.read_text() == "earlier line 1\nearlier line 2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.jsonl.cmalign-run"]
    assert (tmp_path / "out.jsonl.cmalign-run").read_text() == ""  # the failed run is not on record for a resume
    with LabelledOutput(out, overwrite=True) as output:
        output.claim(tmp_path / "in.jsonl")
        output.start(iter(items), {"bank": "b"})
        output.write(items, [Record(label="a")] * 3, "cm")
        output.finish()
    assert [json.loads(line)["line"] for line in out.read_text().splitlines()] == [1, 2, 3]


def test_the_error_that_stops_an_overwrite_says_the_old_output_is_unchanged(tmp_path):
    from cmalign.errors import CmalignError

    out = tmp_path / "out.jsonl"
    out.write_text("earlier line 1\n")
    items = [Item(f"text {n}", None, n) for n in range(1, 4)]
    with pytest.raises(CmalignError) as error:
        with LabelledOutput(out, overwrite=True) as output:
            output.claim(tmp_path / "in.jsonl")
            output.start(iter(items), {"bank": "b"})
            output.write(items[:2], [Record(label="a")] * 2, "cm")
            raise CmalignError("openai:m at http://127.0.0.1:1/v1: HTTP 429 after 5 retries")
    assert str(error.value) == (f"openai:m at http://127.0.0.1:1/v1: HTTP 429 after 5 retries; {out} is unchanged: "
                                "the old output stays until a run replaces it whole")
    assert out.read_text() == "earlier line 1\n"
    with pytest.raises(CmalignError) as error:  # a first run has no old output to speak of
        with LabelledOutput(tmp_path / "new.jsonl") as output:
            output.claim(tmp_path / "in.jsonl")
            output.start(iter(items), {"bank": "b"})
            raise CmalignError("HTTP 429")
    assert str(error.value) == "HTTP 429"


def test_a_temporary_file_a_killed_write_left_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "exp.csv"
    stale = tmp_path / f".exp.csv.{dead.pid}.tmp"
    stale.write_bytes(b"x" * 1000)
    alive = tmp_path / f".exp.csv.{os.getppid()}.tmp"  # a running process's own: never touched
    alive.write_bytes(b"in progress")
    write_atomically(target, lambda handle: handle.write(b"new\n"))
    assert target.read_bytes() == b"new\n" and not stale.exists() and alive.read_bytes() == b"in progress"


def test_a_signal_during_a_write_leaves_no_temporary_file(tmp_path):
    def write(handle):
        handle.write(b"half")
        raise SystemExit(143)  # what the command line's SIGTERM handler raises

    with pytest.raises(SystemExit):
        write_atomically(tmp_path / "exp.csv", write)
    assert list(tmp_path.iterdir()) == []


FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "'=already quoted",
            "plain text", "it's fine"]


def test_csv_cells_a_spreadsheet_would_run_are_quoted_and_read_back_unchanged(tmp_path, capsys):
    src = tmp_path / "labelled.jsonl"
    src.write_text("".join(json.dumps({"text": t, "label": "alarm", "note": t}) + "\n" for t in FORMULAS))
    out = tmp_path / "out.csv"
    assert run(capsys, "export", src, "-o", out)[0] == 0
    with open(out, newline="", encoding="utf-8") as handle:
        cells = [row["text"] for row in csv.DictReader(handle)]
    assert all(cell[0] not in "=+-@" for cell in cells)
    assert cells[:5] == ["'" + t for t in FORMULAS[:5]] and cells[5:] == FORMULAS[5:]
    assert [i.text for i in read_items(out)] == FORMULAS
    assert [i.fields["note"] for i in read_items(out)] == FORMULAS
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in FORMULAS))
    chosen = tmp_path / "chosen.csv"
    assert run(capsys, "select", pool, "--n", "7", "-o", chosen, "--selector", "random")[0] == 0
    with open(chosen, newline="", encoding="utf-8") as handle:
        assert all(row["text"][0] not in "=+-@" for row in csv.DictReader(handle))
    assert sorted(i.text for i in read_items(chosen)) == sorted(FORMULAS)


def test_a_number_no_parquet_column_holds_is_one_line(tmp_path, capsys):
    src = tmp_path / "big.jsonl"
    src.write_text('{"text": "a", "n": 1}\n{"text": "b", "n": 99999999999999999999999}\n')
    code, err = run(capsys, "export", src, "-o", tmp_path / "big.parquet")
    assert code == 2 and "big.jsonl:2: the field 'n' is 99999999999999999999999" in err
    assert not (tmp_path / "big.parquet").exists()


def test_an_output_path_that_loops_or_is_too_long_fails_before_any_model_loads(job, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("cmalign.jobs.common.default_encoder", lambda *a: pytest.fail("loaded the model"))
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for target in (tmp_path / "a", tmp_path / ("x" * 250 + ".jsonl")):
        code, err = run(capsys, "annotate", job / "in.jsonl", "--bank", job / "bank.json", "-o", target,
                        "--method", "cm_remap")
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
