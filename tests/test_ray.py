"""annotate --engine ray on a real local Ray instance with two workers: the same file, line for line,
as the single-process run, resumed the same way."""

import json
import subprocess
import sys

import pytest
import ray  # the test extra installs Ray: these tests are never skipped

from cmalign.cli import main
from cmalign.data import load_bundled

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    ds = load_bundled("massive_scenario")
    (root / "prefs.jsonl").write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n"
                                              for i in ds.large[:400]))
    (root / "in.jsonl").write_text("".join(json.dumps({"text": i.text}) + "\n" for i in ds.small[:500]))
    assert main(["fit", str(root / "prefs.jsonl"), "-o", str(root / "bank.json")]) == 0  # cm_best, state saved
    return root


def annotate(job, out, *extra):
    return ["annotate", str(job / "in.jsonl"), "--bank", str(job / "bank.json"), "-o", str(out),
            "--batch-size", "32", *extra]


def test_ray_gives_the_single_process_file_and_resumes_it(capsys, job, tmp_path):
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    # the single-process run as a user runs it: a fresh process (this one has computed the same
    # texts before, in other batches and other tests, which can move a last printed digit)
    subprocess.run([sys.executable, "-m", "cmalign", *annotate(job, local)], check=True, capture_output=True)
    assert main(annotate(job, remote, "--engine", "ray", "--workers", "2")) == 0
    err = capsys.readouterr().err
    assert "annotated 500 items with cm_best" in err and "500 annotator calls" in err
    assert remote.read_bytes() == local.read_bytes()

    # a run that died after 4 chunks and half a line: --resume on Ray finishes the same file (resumed
    # at a chunk boundary, so each chunk holds the texts it held before)
    lines = local.read_bytes().splitlines(keepends=True)
    remote.write_bytes(b"".join(lines[:128]) + lines[128][:40])
    assert main(annotate(job, remote, "--engine", "ray", "--workers", "2", "--resume")) == 0
    assert "annotated 372 items (128 done by an earlier run)" in capsys.readouterr().err
    assert remote.read_bytes() == local.read_bytes()
    assert not ray.is_initialized()  # the local instance started for the run is stopped after it


def test_an_unreachable_cluster_is_one_line(capsys, job, tmp_path):
    code = main(annotate(job, tmp_path / "out.jsonl", "--engine", "ray", "--ray-address", "127.0.0.1:1"))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("cmalign: error: cannot start or reach Ray at 127.0.0.1:1")
    assert len(err.strip().splitlines()) == 1
