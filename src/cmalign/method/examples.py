"""Toy models for the methods' examples: each a few lines, deterministic, with no model to load.

An annotator or encoder here behaves like a real one (the same verbs) on purpose-made texts, so an
example shows what a method does with a known discrepancy.

>>> Swapper().annotate(["set an alarm"], LabelSet(("alarm", "music", "weather")))[0].label
'weather'
"""

from __future__ import annotations

import numpy as np

from ..annotators.base import ScoringAnnotator
from ..chat.backend import ChatBackend, Completion
from ..labels import LabelSet


class Swapper(ScoringAnnotator):
    """Says ``weather`` for an alarm, ``alarm`` for rain and ``music`` for anything else."""

    identity = "swapper"

    def label_scores(self, texts, labels):
        said = ["weather" if "alarm" in t else "alarm" if "rain" in t else "music" for t in texts]
        return np.array([[float(s == label) for label in labels.labels] for s in said])


class CardSayer(ScoringAnnotator):
    """Says ``card arrival`` whenever a text names a card, and nothing it is sure of otherwise."""

    identity = "card-sayer"

    def label_scores(self, texts, labels):
        return np.array([[float(("card" in t) == (label == "card arrival")) for label in labels.labels]
                         for t in texts])


class Letters:
    """An encoder: a text's counts of a few letters, as a unit vector."""

    identity = "letters"

    def encode(self, texts):
        X = np.array([[t.count(c) for c in "aeiourst"] for t in texts], float) + 0.1
        return X / np.linalg.norm(X, axis=1, keepdims=True)


class Words:
    """An encoder: which of a few banking words a text holds, as a unit vector."""

    identity = "words"
    WORDS = ("card", "arrival", "lost", "stolen", "exchange", "rate", "pin")

    def encode(self, texts):
        X = np.array([[w in t for w in self.WORDS] for t in texts], float) + 0.05
        return X / np.linalg.norm(X, axis=1, keepdims=True)


class KeywordChat(ChatBackend):
    """A chat model: answers the last ``Text:`` of the last message with the first allowed label (the
    system message's ``- label`` lines) that the text names, else ``no idea``."""

    @property
    def model_id(self) -> str:
        return "keyword-chat"

    def _send(self, requests, store) -> None:
        for i, request in enumerate(requests):
            (_, system), *_, (_, last) = request.messages
            labels = [line[2:].strip() for line in system.splitlines() if line.startswith("- ")]
            text = last.rsplit("Text:", 1)[-1]
            store(i, Completion(next((label for label in labels if label in text), "no idea"), 30, 2))


CARD_LABELS = LabelSet(("card arrival", "lost or stolen", "exchange rate"))
CARD_TEXTS = ["has my card arrival been sent", "when is my card arrival", "card lost", "my card was stolen",
              "lost my pin card", "exchange rate today", "what rate do you give"]
CARD_Y = ["card arrival", "card arrival", "lost or stolen", "lost or stolen", "lost or stolen", "exchange rate",
          "exchange rate"]
