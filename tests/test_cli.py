"""The command line, end to end on the real embedded model and real bundled data."""

import json
import re
from pathlib import Path
import subprocess
import sys

import pytest

from cmalign.cli import main
from cmalign.data import Budget, load_bundled, protocol_split
from cmalign.evaluation import accuracy
from cmalign.method import METHODS, TransductiveCM


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """A user's own files: preference CSV with other column names, an unlabelled JSONL."""
    root = tmp_path_factory.mktemp("user")
    ds = load_bundled("massive_scenario")
    pref = ds.large[:400]
    lines = ["id,utterance,my_label"] + [f'{n},"{i.text}",{i.label}' for n, i in enumerate(pref)]
    (root / "prefs.csv").write_text("\n".join(lines) + "\n")
    (root / "labels.txt").write_text("\n".join(ds.labels.labels) + "\n")
    (root / "new.jsonl").write_text("".join(json.dumps({"text": i.text}) + "\n" for i in ds.small[:300]))
    return root, ds


@pytest.fixture(scope="module")
def fitted_bank(user_files):
    root, _ = user_files
    bank = root / "bank.json"
    assert main(["fit", str(root / "prefs.csv"), "-o", str(bank), "--labels", str(root / "labels.txt"),
                 "--text-field", "utterance", "--label-field", "my_label"]) == 0
    return bank


def test_datasets_lists_all_five(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0
    for name in ("banking77", "clinc", "massive_scenario", "mtop_intent", "stackexchange"):
        assert name in out
    assert "10003" in out and "SOURCES.md" in out


def test_fit_then_annotate_on_user_files(capsys, user_files, fitted_bank, encoder):
    root, ds = user_files
    bank = fitted_bank
    data = json.loads(bank.read_text())
    assert data["n_samples"] == 400 and data["labels"] == list(ds.labels.labels)
    assert sum(sum(e["counts"].values()) for e in data["entries"]) == 400

    out_file = root / "out.jsonl"
    code, _, err = run(capsys, "annotate", str(root / "new.jsonl"), "--bank", str(bank), "-o", str(out_file),
                       "--method", "cm_remap")
    assert code == 0, err
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(rows) == 300 and [r["line"] for r in rows] == list(range(1, 301))
    for r in rows:
        assert r["label"] in ds.labels
        entry = next((e for e in data["entries"] if e["response"] == r["annotator_label"]), None)
        expected = [] if entry is None else list(entry["counts"])
        assert r["candidates"] == expected
        if len(expected) >= 2:
            assert r["action"] == "reask" and r["label"] in expected
        elif len(expected) == 1 and expected[0] != r["annotator_label"]:
            assert r["action"] == "remap" and r["label"] == expected[0]
        else:
            assert r["action"] in ("keep", "unseen") and r["label"] == r["annotator_label"]
    # the command labels exactly as the library does with the same bank
    from cmalign import ConsistentMarginalization, EmbeddingAnnotator, MemoryBank

    cm = ConsistentMarginalization.from_bank(EmbeddingAnnotator(encoder), MemoryBank.load(bank), rule="remap")
    assert [r["label"] for r in rows] == cm.predict([i.text for i in ds.small[:300]])
    assert "items/s" in err


def test_bench_json_is_shaped_as_documented_and_repeatable(capsys, annotator):
    argv = ("bench", "--dataset", "massive_scenario", "--budget", "0.01", "--seed", "0", "--limit", "1000", "--json")
    code, out1, _ = run(capsys, *argv)
    assert code == 0
    code, out2, _ = run(capsys, *argv)

    def timeless(out):  # the same numbers, but never the same seconds
        result = json.loads(out)
        return [{k: v for k, v in m.items() if k != "fit_seconds"} for m in result.pop("methods").values()], result

    assert timeless(out1) == timeless(out2)
    assert all(m["fit_seconds"] >= 0 for m in json.loads(out1)["methods"].values())
    (line,) = out1.splitlines()
    result = json.loads(line)
    assert result["dataset"] == "massive_scenario" and result["seed"] == 0 and result["budget"] == "0.01"
    assert result["n_preference"] == 115 and result["n_eval"] == 1000
    assert result["annotator"].startswith("embedding:bge-small-en-int8@68807e3ff2ab")
    methods = result["methods"]
    assert list(methods) == list(METHODS)
    # the annotator's column is the annotator's own accuracy on the evaluation items
    ds = load_bundled("massive_scenario")
    split = protocol_split(ds, Budget(fraction=0.01), seed=0, limit=1000)
    own = annotator.annotate([i.text for i in split.evaluation], ds.labels)
    assert methods["base"]["accuracy"] == round(accuracy([a.label for a in own], [i.label for i in split.evaluation]), 6)
    # the combined model beats the annotator and both baselines here, and is better calibrated
    assert methods["cm_best"]["accuracy"] > max(methods[m]["accuracy"] for m in ("base", "knn", "logreg")) + 0.02
    assert methods["cm_best"]["ece"] < methods["base"]["ece"] / 2
    assert all("ece" not in methods[m] for m in ("cm", "cm_remap"))  # a rule's decision is no probability
    assert methods["base"]["annotator_calls"] == 1000
    assert result["methods"]["cm"]["annotator_calls"] >= 1000
    assert result["methods"]["knn"]["annotator_calls"] == 0
    # what each combined model weighs, as it fitted it; no other method has such weights
    from cmalign.method.combined import FEATURES

    assert all(set(methods[m]["weights"]) == set(FEATURES) for m in ("cm_stack", "cm_best"))
    assert methods["cm_stack"]["weights"]["annotator"] != 0
    assert all("weights" not in methods[m] for m in methods if m not in ("cm_stack", "cm_best"))
    # and what cm_best, alone, learned from the corpus it labelled
    adapted = methods["cm_best"]["adapted"]
    assert adapted.endswith("(chosen on the preference samples)") or adapted.startswith("nothing (")
    assert all("adapted" not in methods[m] for m in methods if m != "cm_best")
    # what each CM rule did, by action: every item once, the annotator's right answers adding up to
    # its own accuracy, the rule's to the rule's; both re-ask between two or more candidates, only
    # the remap rule replaces an answer by its one candidate
    for rule in ("cm", "cm_remap"):
        actions = methods[rule]["actions"]
        assert sum(a["n"] for a in actions.values()) == 1000
        assert sum(a["answer_right"] for a in actions.values()) == round(1000 * methods["base"]["accuracy"])
        assert sum(a["label_right"] for a in actions.values()) == round(1000 * methods[rule]["accuracy"])
        assert set(actions) <= {"keep", "unseen", "remap", "reask", "reask-invalid"}
    assert "reask" in methods["cm"]["actions"] and "reask" in methods["cm_remap"]["actions"]
    assert "remap" in methods["cm_remap"]["actions"] and "remap" not in methods["cm"]["actions"]
    assert all("actions" not in methods[m] for m in methods if m not in ("cm", "cm_remap"))


def test_annotate_with_the_combined_method_gives_confidences(capsys, user_files, fitted_bank, tmp_path):
    root, ds = user_files
    out_file = tmp_path / "best.jsonl"
    code, _, err = run(capsys, "annotate", str(root / "new.jsonl"), "--bank", str(fitted_bank), "-o", str(out_file))
    assert code == 0, err
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(rows) == 300 and all(r["method"] == "cm_best" for r in rows)
    assert all(r["label"] in ds.labels and 0.0 < r["confidence"] <= 1.0 for r in rows)
    gold = [i.label for i in ds.small[:300]]
    correct = [r["label"] == g for r, g in zip(rows, gold)]
    base = sum(r["annotator_label"] == g for r, g in zip(rows, gold))
    assert sum(correct) > base + 30  # 400 labels of the user's own beat the zero-shot annotator
    # confidence means something: the confident half is right more often than the rest
    order = sorted(range(300), key=lambda i: -rows[i]["confidence"])
    assert sum(correct[i] for i in order[:150]) > sum(correct[i] for i in order[150:]) + 20


def test_annotate_uses_the_state_fit_saved_and_refits_only_without_it(capsys, user_files, fitted_bank, tmp_path):
    root, _ = user_files
    assert fitted_bank.with_name("bank.cm_best.npz").is_file()
    code, _, err = run(capsys, "annotate", str(root / "new.jsonl"), "--bank", str(fitted_bank), "-o",
                       str(tmp_path / "saved.jsonl"))
    assert code == 0 and "fitted cm_best" not in err
    alone = tmp_path / "alone.json"  # the same bank without its state file
    alone.write_text(fitted_bank.read_text())
    code, _, err = run(capsys, "annotate", str(root / "new.jsonl"), "--bank", str(alone), "-o",
                       str(tmp_path / "refit.jsonl"))
    assert code == 0 and "fitted cm_best on the bank's 400 preference samples (alone.cm_best.npz: no saved state" in err
    assert (tmp_path / "saved.jsonl").read_text() == (tmp_path / "refit.jsonl").read_text()


def test_variants_need_a_bank_with_samples(capsys, fitted_bank, user_files, tmp_path):
    root, _ = user_files
    data = json.loads(fitted_bank.read_text())
    data["samples"] = []
    counts_only = tmp_path / "counts.json"
    counts_only.write_text(json.dumps(data))
    code, _, err = run(capsys, "annotate", str(root / "new.jsonl"), "--bank", str(counts_only), "-o",
                       str(tmp_path / "o.jsonl"))
    assert code == 2 and "needs the preference samples" in err
    code, _, err = run(capsys, "annotate", str(root / "new.jsonl"), "--bank", str(counts_only), "-o",
                       str(tmp_path / "o.jsonl"), "--method", "cm")
    assert code == 0, err


@pytest.mark.slow
def test_bench_on_banking77_uses_the_papers_sizes_and_its_numbers_stay(capsys):
    code, out, _ = run(capsys, "bench", "--dataset", "banking77", "--budget", "0.05", "--seed", "0", "--json")
    result = json.loads(out)
    assert code == 0 and result["n_preference"] == 500 and result["n_eval"] == 3080
    # the figures kept for this run in benchmarks/results/encoders/bench-bge-small.jsonl (the docs' accuracy
    # table): a change that moves them is a change of behaviour
    assert {m: v["accuracy"] for m, v in result["methods"].items() if m != "logreg"} == {
        "base": 0.672403, "cm": 0.677273, "cm_remap": 0.677273, "knn": 0.788636, "cm_marg": 0.681169,
        "cm_ibank": 0.727273, "cm_stack": 0.825649, "cm_best": 0.858442}


def test_bench_table_on_a_user_folder(capsys, tmp_path):
    ds = load_bundled("massive_scenario")
    (tmp_path / "small.jsonl").write_text("".join(
        json.dumps({"text": i.text, "label": i.label}) + "\n" for i in ds.small[:400]))
    code, out, _ = run(capsys, "bench", "--data", str(tmp_path), "--budget", "0.1", "--seed", "0,1")
    assert code == 0
    assert "cm_remap" in out and "mean over seeds" in out
    assert out.count(tmp_path.name) == 3  # two runs and their mean


# -- bad input: one line naming the file and the problem, exit 2, nothing else -----------------

BAD = {
    "malformed_jsonl": ("p.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": }\n', "p.jsonl:2: not valid JSON"),
    "csv_without_text": ("p.csv", "utterance,label\nhi,x\n", "p.csv (column 'text or input'): no text field"),
    "empty_preferences": ("p.jsonl", "", "p.jsonl: the file holds no items"),
    "label_not_in_set": ("p.jsonl", '{"text": "a", "label": "iot"}\n{"text": "b", "label": "cooking"}\n',
                         "p.jsonl:2: label 'cooking' is not in the label set"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_preference_files(capsys, tmp_path, case):
    name, content, expected = BAD[case]
    (tmp_path / name).write_text(content)
    (tmp_path / "labels.txt").write_text("iot\nqa\n")
    code, out, err = run(capsys, "fit", str(tmp_path / name), "-o", str(tmp_path / "bank.json"),
                         "--labels", str(tmp_path / "labels.txt"))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and expected in err
    assert not (tmp_path / "bank.json").exists()


def test_bank_from_a_different_label_set(capsys, tmp_path, fitted_bank):
    bank = fitted_bank
    (tmp_path / "in.jsonl").write_text('{"text": "wake me at 7", "label": "alarm"}\n'
                                       '{"text": "what is 2+2", "label": "arithmetic"}\n')
    code, _, err = run(capsys, "annotate", str(tmp_path / "in.jsonl"), "--bank", str(bank), "-o",
                       str(tmp_path / "out.jsonl"))
    assert code == 2 and f"in.jsonl:2: label 'arithmetic' is not in the label set from the bank {bank}" in err
    (tmp_path / "other.txt").write_text("alarm\nweather\n")
    code, _, err = run(capsys, "annotate", str(tmp_path / "in.jsonl"), "--bank", str(bank), "-o",
                       str(tmp_path / "out.jsonl"), "--labels", str(tmp_path / "other.txt"))
    assert code == 2 and "different label set" in err and str(bank) in err


@pytest.mark.parametrize("budget", ["0", "1.5"])
def test_bad_budget_exits_cleanly(budget):
    # a real process: what a user sees, with no traceback
    proc = subprocess.run([sys.executable, "-m", "cmalign", "bench", "--dataset", "massive_scenario",
                           "--budget", budget], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("cmalign: error: budget") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_annotate_learns_from_its_input_and_resumes_only_as_it_began(capsys, tmp_path, annotator):
    ds = load_bundled("massive_scenario")  # 1% of MASSIVE labelled, 2,974 items to label: much to learn
    split = protocol_split(ds, Budget(fraction=0.01), seed=0)
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps({"text": i.text, "label": i.label}) + "\n"
                                                  for i in split.preference))
    (tmp_path / "labels.txt").write_text("\n".join(ds.labels.labels) + "\n")
    new, bank = str(tmp_path / "new.jsonl"), str(tmp_path / "bank.json")
    Path(new).write_text("".join(json.dumps({"text": i.text}) + "\n" for i in ds.small))
    assert main(["fit", str(tmp_path / "prefs.jsonl"), "--labels", str(tmp_path / "labels.txt"), "-o", bank]) == 0
    learned = tmp_path / "learned.jsonl"
    code, _, err = run(capsys, "annotate", new, "--bank", bank, "-o", str(learned))
    assert code == 0 and "cm_best learned from 2974 of the 2974 items: " in err, err
    assert "(chosen on the preference samples)" in err
    # the closing line says what the learning cost, apart from the labelling's own rate
    closing = re.search(r"in ([\d.]+)s from start \(\d+ items/s; ([\d.]+)s of it learning from a sample of the "
                        r"input, then (\d+) items/s labelling,", err)
    assert closing and 0 < float(closing[2]) < float(closing[1]) and int(closing[3]) > 2974 / float(closing[1]), err
    code, _, err = run(capsys, "annotate", new, "--bank", bank, "-o", str(tmp_path / "off.jsonl"), "--adapt", "0")
    assert code == 0 and "learned from" not in err and "learning from a sample" not in err
    code, _, err = run(capsys, "annotate", new, "--bank", bank, "-o", str(tmp_path / "stack.jsonl"),
                       "--method", "cm_stack")
    assert code == 0, err

    def labels(name):
        return [r["label"] for r in map(json.loads, (tmp_path / name).read_text().splitlines())]

    gold = [i.label for i in ds.small]
    # without the corpus, cm_best is the model the library fits before adapt (cm_stack on centred vectors)
    unadapted = TransductiveCM(annotator).fit([i.text for i in split.preference], [i.label for i in split.preference],
                                              label_set=ds.labels)
    assert labels("off.jsonl") == unadapted.predict([i.text for i in ds.small])
    assert labels("off.jsonl") != labels("stack.jsonl")
    assert accuracy(labels("learned.jsonl"), gold) > accuracy(labels("stack.jsonl"), gold) + 0.01
    whole = learned.read_text()  # cut after the first chunk, as a killed run leaves it
    learned.write_text("".join(whole.splitlines(keepends=True)[:2048]))
    code, _, err = run(capsys, "annotate", new, "--bank", bank, "-o", str(learned), "--resume", "--adapt", "0")
    assert code == 2 and "another adapt" in err             # the rest would come from another model
    code, _, err = run(capsys, "annotate", new, "--bank", bank, "-o", str(learned), "--resume")
    assert code == 0 and learned.read_text() == whole
    code, _, err = run(capsys, "annotate", new, "--bank", bank, "-o", str(tmp_path / "x.jsonl"), "--adapt", "-1")
    assert code == 2 and "--adapt -1" in err


def test_a_command_given_no_settings_runs_its_job_on_the_library_defaults():
    # each flag takes its default from the options class's own declaration: none can drift apart
    from cmalign.cli.commands import _build, model_options
    from cmalign.cli.parser import build_parser
    from cmalign.jobs import AnnotateOptions, FitOptions, ReviewOptions, SelectOptions, WriteExampleOptions
    from cmalign.serve import ServeOptions

    parser = build_parser()
    for argv, options, required in (
            (["serve", "--bank", "b.json"], ServeOptions, {"bank": "b.json"}),
            (["annotate", "in.jsonl", "--bank", "b.json", "-o", "o.jsonl"], AnnotateOptions,
             {"input": "in.jsonl", "bank": "b.json", "output": "o.jsonl"}),
            (["fit", "p.jsonl", "-o", "b.json"], FitOptions, {"preferences": ["p.jsonl"], "output": "b.json"}),
            (["select", "pool.jsonl", "--n", "5", "-o", "s.jsonl"], SelectOptions,
             {"pool": "pool.jsonl", "n": 5, "output": "s.jsonl"}),
            (["review", "--bank", "b.json", "-o", "r.jsonl"], ReviewOptions, {"bank": "b.json", "output": "r.jsonl"}),
            (["datasets", "--write", "clinc", "d"], WriteExampleOptions, {"name": "clinc", "folder": "d"})):
        args = parser.parse_args(argv)
        model = {"model": model_options(args)} if hasattr(args, "annotator") else {}
        given = {name: required[name] for name in ("name", "folder") if options is WriteExampleOptions}
        assert _build(options, args, **model, **given) == options(**required)


def test_a_setting_declared_once_becomes_a_flag_with_its_type_default_and_help():
    from dataclasses import dataclass

    from cmalign.settings import flags, setting

    @dataclass(frozen=True)
    class Options:
        path: str
        rate: float = setting(0.5, "how fast")
        limit: int | None = setting(None, "at most N", type=int, metavar="N")
        quiet: bool = setting(False, "say less", action="store_true")
        seed: int = setting(0, "the seed", name="--llm-seed")

    assert flags(Options) == [("--rate", float, 0.5, "how fast", {}),
                              ("--limit", int, None, "at most N", {"metavar": "N"}),
                              ("--quiet", None, None, "say less", {"action": "store_true"}),
                              ("--llm-seed", int, 0, "the seed", {})]
    assert [row[0] for row in flags(Options, ("seed", "rate"))] == ["--llm-seed", "--rate"]
