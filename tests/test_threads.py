"""Thread settings: idle OpenMP threads sleep instead of spinning, and --threads reaches torch and BLAS."""

import json
import os

import torch
from threadpoolctl import threadpool_info, threadpool_limits

from cmalign.cli import main


def test_annotate_sets_its_threads_and_leaves_a_users_wait_policy(capsys, tmp_path, monkeypatch):
    prefs, bank, inp = tmp_path / "prefs.jsonl", tmp_path / "bank.json", tmp_path / "in.jsonl"
    prefs.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                             for t, lab in [("wake me at 7", "alarm"), ("play jazz", "music")] * 3))
    inp.write_text(json.dumps({"text": "set an alarm for six"}) + "\n")
    before = torch.get_num_threads()
    blas_before = max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert main(["fit", str(prefs), "-o", str(bank), "--method", "cm_remap"]) == 0
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert main(["annotate", str(inp), "--bank", str(bank), "-o", str(tmp_path / "out.jsonl"),
                     "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")

        monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")   # the user's choice is kept
        monkeypatch.setenv("OMP_NUM_THREADS", "2")        # and is --threads' default
        assert main(["annotate", str(inp), "--bank", str(bank), "-o", str(tmp_path / "out.jsonl"),
                     "--overwrite"]) == 0
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and torch.get_num_threads() == 2
        capsys.readouterr()
        assert main(["annotate", str(inp), "--bank", str(bank), "-o", str(tmp_path / "o.jsonl"), "--threads", "0"]) == 2
        assert "--threads 0: must be at least 1" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
        threadpool_limits(blas_before, user_api="blas")
