"""openai-score's numerics and protocol: pages of options, letters read from log-probabilities, the
cache keeping them, and a re-ask that sends nothing. The backend here answers from a script; the
same scorer against a real server is in test_openai_backend.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cmalign.annotators.openai_score import CODES, CONTENT_FREE, OpenAILabelScorer, option_logprobs, pages
from cmalign.chat.backend import ChatBackend, ChatRequest, Completion, ResponseCache, TokenChoice
from cmalign.labels import LabelSet


@pytest.mark.parametrize("n", [1, 18, 20, 21, 39, 77, 150, 400])
def test_pages_show_every_label_once_in_order_and_fit_the_servers_alternatives(n):
    layout = pages(n)
    assert [j for page in layout for j in page] == list(range(n))
    if n <= len(CODES):
        assert len(layout) == 1
    else:  # 19 labels and "none of these" at most, as few pages as that allows, as even as they can be
        assert len(layout) == math.ceil(n / (len(CODES) - 1))
        assert max(map(len, layout)) <= len(CODES) - 1 and max(map(len, layout)) - min(map(len, layout)) <= 1


def choice(*alternatives: tuple[str, float], token: str | None = None) -> TokenChoice:
    alternatives = tuple((t, math.log(p)) for t, p in alternatives)
    return TokenChoice(token or alternatives[0][0], alternatives[0][1], alternatives)


def test_letters_are_read_from_the_alternatives_and_spellings_of_one_letter_add_up():
    first = choice(("B", 0.6), ("A.", 0.2), (" B", 0.1), ("The", 0.05), ("Al", 0.02), ("a", 0.01))
    got = np.exp(option_logprobs([first], 3))
    # C was not listed: the mass left (1 - 0.98) shared, but no more than the least likely listed (0.01)
    expected = np.array([0.2, 0.7, 0.01]) / 0.91
    np.testing.assert_allclose(got, expected)
    # a letter past the options shown ("D" with 3 options) is not one of them
    assert np.exp(option_logprobs([choice(("D", 0.9), ("A", 0.1))], 3))[0] > 0.9


def test_a_reply_that_opens_with_a_bracket_is_read_at_its_letter():
    opening = choice(("(", 0.9), ("A", 0.1))
    letter = choice(("C", 0.8), ("B", 0.2))
    got = np.exp(option_logprobs([opening, letter], 3))
    assert got.argmax() == 2 and got[2] > 0.75


class Scripted(ChatBackend):
    """Answers each request with log-probabilities that favour the option naming the text's label
    (a content-free text's: none), and the letter ``lean`` whatever the text; ``mute`` replies to a
    content-free text with words, no letter."""

    def __init__(self, lean: str | None = None, mute: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sent: list[ChatRequest] = []
        self.refuse: set[str] = set()
        self.lean, self.mute = lean, mute

    @property
    def model_id(self) -> str:
        return "scripted"

    def _send(self, requests, store) -> None:
        for i, request in enumerate(requests):
            self.sent.append(request)
            system, user = request.message_dicts()[0]["content"], request.message_dicts()[1]["content"]
            text = user.removeprefix("Text: ").removesuffix("\nOption:")
            if text in self.refuse:
                store(i, Completion("", 0, 0, finish_reason="rejected: too long"))
                continue
            options = [line.split(". ", 1) for line in system.splitlines() if line[:2] in {f"{c}." for c in CODES}]
            if text in CONTENT_FREE and self.mute:
                words = (("The", math.log(0.6)), ("I", math.log(0.3)))
                store(i, Completion("The", 40, 1, logprobs=(TokenChoice("The", words[0][1], words),)))
                continue
            wanted = None if text in CONTENT_FREE else \
                next((code for code, option in options if option == text.split()[0]), options[-1][0])
            weight = {code: 0.05 + 0.4 * (code == wanted) + 0.45 * (code == self.lean) for code, _ in options}
            total = sum(weight.values())
            alternatives = tuple((code, math.log(w / total)) for code, w in sorted(weight.items(), key=lambda cw: -cw[1]))
            store(i, Completion(alternatives[0][0], 40, 1,
                                logprobs=(TokenChoice(alternatives[0][0], alternatives[0][1], alternatives),)))


LABELS = LabelSet.of([f"label{j:02d}" for j in range(45)])


def test_a_large_label_set_is_scored_in_pages_and_a_reask_sends_nothing(tmp_path):
    backend = Scripted(cache=ResponseCache(tmp_path / "c.sqlite"))
    scorer = OpenAILabelScorer(backend)
    texts = ["label07 please", "label33 now", "label44"]
    answers = scorer.annotate(texts, LABELS)
    # 45 labels: three pages of 15 and "none", for each text and, once, for each content-free text
    assert len(backend.sent) == 3 * 3 + 3 * 3 and scorer.calls == 18
    assert all(r.top_logprobs == len(CODES) and r.max_tokens == 2 for r in backend.sent)
    assert [a.label for a in answers] == ["label07", "label33", "label44"]
    for a in answers:
        assert a.scores.shape == (45,) and a.scores.sum() == pytest.approx(1.0) and a.scores.max() > 0.1
    # CM's re-ask within candidates reads the same scores: no request, the best allowed label
    again = scorer.annotate(texts, LABELS, candidates=[("label01", "label07"), ("label02", "label03"), None])
    assert len(backend.sent) == 18
    assert again[0].label == "label07" and again[1].label in ("label02", "label03") and again[2].label == "label44"
    assert set(np.flatnonzero(again[1].scores)) == {2, 3}
    # a new process reads the letters' log-probabilities back from the cache: nothing sent, same scores
    fresh = Scripted(cache=ResponseCache(tmp_path / "c.sqlite"))
    replayed = OpenAILabelScorer(fresh).annotate(texts, LABELS)
    assert fresh.sent == [] and fresh.usage.cache_hits == 18
    for a, b in zip(answers, replayed):
        np.testing.assert_allclose(a.scores, b.scores)


def test_a_refused_text_has_no_answer_and_is_asked_again(tmp_path):
    backend = Scripted()
    backend.refuse = {"label03 and a very long text"}
    scorer = OpenAILabelScorer(backend)
    answers = scorer.annotate(["label05", "label03 and a very long text"], LABELS)
    assert answers[0].label == "label05"
    assert answers[1].label is None and answers[1].raw == "" and np.allclose(answers[1].scores, 1 / 45)
    backend.refuse = set()
    assert scorer.annotate(["label03 and a very long text"], LABELS)[0].label == "label03"
    # the refused text's three pages once more; not the other's, nor the content-free texts'
    assert len(backend.sent) == 9 + 2 * 3 + 3


def test_a_dry_run_counts_every_page_and_sends_nothing():
    backend = Scripted()
    scorer = OpenAILabelScorer(backend)
    with backend.dry() as plan:
        answers = scorer.annotate(["label01", "label02"], LABELS)
    assert plan.requests == 6 + 9 and plan.max_completion_tokens == 30 and backend.sent == []
    assert all(a.label is None for a in answers)
    assert scorer.annotate(["label01"], LABELS)[0].label == "label01"  # nothing kept from the dry run


SMALL = LabelSet.of(["alarm", "music", "weather"])
LEANING = ["music please", "weather today", "alarm at seven"]


def test_a_models_lean_towards_a_letter_is_taken_out_of_its_scores():
    raw = OpenAILabelScorer(Scripted(lean="A"), calibrate=False).annotate(LEANING, SMALL)
    assert [a.label for a in raw] == ["alarm", "alarm", "alarm"]  # "A" whatever the text
    backend = Scripted(lean="A")
    scorer = OpenAILabelScorer(backend)
    assert [a.label for a in scorer.annotate(LEANING, SMALL)] == ["music", "weather", "alarm"]
    asked = [r.message_dicts()[1]["content"] for r in backend.sent]
    assert asked[:3] == [f"Text: {t}\nOption:" for t in CONTENT_FREE] and len(asked) == 6
    assert [a.label for a in scorer.annotate(["music again"], SMALL)] == ["music"]
    assert len(backend.sent) == 7  # the content-free texts once per label set
    assert scorer.identity != OpenAILabelScorer(backend, calibrate=False).identity


def test_content_free_replies_naming_no_letter_are_left_out_not_an_error():
    backend = Scripted(lean="A", mute=True)
    answers = OpenAILabelScorer(backend).annotate(LEANING, SMALL)
    assert [a.label for a in answers] == ["alarm", "alarm", "alarm"]  # nothing to calibrate with: as given
    assert len(backend.sent) == 6


def test_requests_without_log_probabilities_keep_their_cache_keys():
    plain = ChatRequest.of([{"role": "user", "content": "hi"}])
    # the key every cache written before top_logprobs existed holds for it (cmalign at c6dbeaa)
    assert plain.key("m") == "2e1584686be18cbf7f7fd09759a73a16b2633a2871fd86b94c08cddb8c79e33d"
    assert ChatRequest.of([{"role": "user", "content": "hi"}], top_logprobs=20).key("m") != plain.key("m")


def test_a_cache_an_older_cmalign_wrote_keeps_its_answers_and_takes_log_probabilities(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the table as cmalign wrote it before log-probabilities
        db.execute("CREATE TABLE completions (key TEXT PRIMARY KEY, model TEXT NOT NULL, request TEXT NOT NULL, "
                   "text TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
                   "finish_reason TEXT NOT NULL, created REAL NOT NULL)")
        db.execute("INSERT INTO completions VALUES ('k1', 'm', '{}', 'alarm', 12, 1, 'stop', 0)")
    cache = ResponseCache(path)
    assert cache.get("k1") == Completion("alarm", 12, 1, cached=True)
    scored = Completion("B", 30, 1, logprobs=(TokenChoice("B", -0.1, (("B", -0.1), ("A", -2.5))),))
    cache.put("k2", "m", ChatRequest.of([{"role": "user", "content": "x"}], top_logprobs=20), scored)
    cache.close()
    assert ResponseCache(path).get("k2").logprobs == scored.logprobs


def test_max_calls_counts_every_page_before_anything_is_sent():
    from cmalign.chat.backend import BudgetExceeded

    backend = Scripted(max_calls=5)
    with pytest.raises(BudgetExceeded, match="needs 15 new requests"):
        OpenAILabelScorer(backend).annotate(["label01", "label02"], LABELS)  # (2 texts + 3 content-free) x 3 pages
    assert backend.sent == []


@pytest.mark.parametrize("spec", ["embedded", "openai-score:gpt-4o-mini"])
def test_a_strategy_or_samples_for_a_scoring_annotator_is_refused_not_ignored(spec):
    from cmalign.annotators.registry import make_annotator
    from cmalign.errors import CmalignError
    from cmalign.prompting import Decoding

    with pytest.raises(CmalignError, match=f"strategy fot is for chat models .*; {spec} scores every label"):
        make_annotator(spec, None, strategy="fot")
    with pytest.raises(CmalignError, match="samples 3 is for chat models"):
        make_annotator(spec, None, decoding=Decoding(temperature=0.7, samples=3))
