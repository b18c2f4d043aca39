"""Label scores from any OpenAI-compatible server, read from its token log-probabilities.

The labels are shown as lettered options (``A. card arrival``, ``B. ...``) and the model is asked for
the letter; the server's ``top_logprobs`` for the answer's first token give a probability for every
option in one request. Servers give at most 20 alternatives a token (OpenAI's limit), so a label set
of more than 20 is shown in pages of 19 options and a 20th, "none of these", one request a page
(77 labels: 5 requests an item; 150: 8). A label's score is the log-probability of its letter on its
page, where the page's "none" keeps the mass of a page that does not hold the answer.

So every label gets a score, every answer is in the set, and CM's re-ask within candidates is a
narrower softmax over scores already paid for (no request).

A small model leans on some letters whatever the text says (one answering "A" for two texts in three
is common). The scores are calibrated against that lean, as in Zhao et al. (2021), "Calibrate Before
Use": each page is also asked with three texts that say nothing (``N/A``, an empty text, ``[MASK]``),
once per label set, and a label's score is its letter's log-probability for the text less the log of
its mean probability over those three. A content-free text whose reply names no letter is left out
of the mean; a page none of them answers keeps its letters' log-probabilities as they are.

The requests go through the chat backend: cache, retries, the call cap, the dry run and usage work
as for ``openai:``. A server that gives no log-probabilities is one clear error naming it and the
chat path instead, and so is a reply whose likely first tokens name no option letter: it scores
nothing, and is never cached.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..chat.backend import ChatBackend, ChatRequest, Completion, TokenChoice
from ..errors import CmalignError
from ..labels import LabelSet
from ..prompting.prompts import Prompts
from .base import ScoringAnnotator

# texts that say nothing, whose answers show a model's lean towards letters (Zhao et al., 2021)
CONTENT_FREE = ("N/A", "", "[MASK]")
CODES = "ABCDEFGHIJKLMNOPQRST"  # 20 letters: the most alternatives OpenAI gives a token
# a token that reads as one option letter: "A", " A", "A.", "(A)", "**A"; not "Al" or "a"
_CODE_TOKEN = re.compile(r"^[\s(\[*\"'`]*([A-T])[\s.):\]*\"'`]*$")


def pages(n_labels: int, size: int = len(CODES)) -> list[range]:
    """Which labels (by index) each request shows: all of them when they fit in ``size`` options,
    else consecutive pages of at most ``size - 1`` (the last option is "none of these"), as even as
    they can be."""
    if n_labels <= size:
        return [range(n_labels)]
    count = math.ceil(n_labels / (size - 1))
    bounds = [round(i * n_labels / count) for i in range(count + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


class NoOption(CmalignError):
    """A reply whose likely first tokens name none of the options shown: it scores no label."""


def option_logprobs(logprobs: Sequence[TokenChoice], n_options: int) -> np.ndarray:
    """Log-probability of each of the first ``n_options`` letters as the answer, normalised over them.

    Read at the reply's first token that has a letter or digit in it (a reply may open with a
    space or a bracket). Alternatives that read as the same letter (``"A"``, ``" A"``) add up. A
    letter the server did not list is given the mass left over from the listed alternatives,
    shared evenly, but never more than the least likely one listed (it would have been listed).
    A reply none of whose listed alternatives is an option's letter is :class:`NoOption`: an even
    share would be a score the model never gave.
    """
    if not logprobs:
        raise NoOption("the reply has no tokens to read an option letter from")
    position = next((c for c in logprobs if re.search(r"\w", c.token)), logprobs[0])
    alternatives = position.alternatives or ((position.token, position.logprob),)
    p = np.zeros(n_options)
    for token, logprob in alternatives:
        found = _CODE_TOKEN.match(token)
        if found and CODES.index(found[1]) < n_options:
            p[CODES.index(found[1])] += math.exp(logprob)
    if not p.any():
        named = ", ".join(repr(t) for t, _ in alternatives[:5])
        raise NoOption(f"the reply names no option letter A-{CODES[n_options - 1]} among its likely first tokens "
                       f"({named}{', ...' if len(alternatives) > 5 else ''})")
    missing = p == 0
    if missing.any():
        listed = [math.exp(lp) for _, lp in alternatives]
        left = max(1.0 - sum(listed), 0.0) / missing.sum()
        p[missing] = max(min(left, min(listed)), 1e-12)
    return np.log(p / p.sum())


class OpenAILabelScorer(ScoringAnnotator):
    """Annotator: a chat model behind an OpenAI-compatible server scoring every label through the
    log-probabilities of lettered options.

    ``calls`` and ``tokens`` count the requests asked for and their tokens (cache hits included:
    the cost on a cold cache); a re-ask within candidates costs none. ``calibrate`` (the default)
    asks each page three content-free texts once per label set and takes their lean towards letters
    out of the scores (see the module's account).

    Examples
    --------
    Every label of a small label set fits one page of options: one request an item, and three once
    for the calibration (counted here by a dry run, which sends nothing).

    >>> from cmalign.chat.backend import ResponseCache
    >>> from cmalign.chat.openai_api import OpenAIChatBackend
    >>> backend = OpenAIChatBackend("qwen", base_url="http://127.0.0.1:8080/v1", cache=ResponseCache(":memory:"))
    >>> scorer = OpenAILabelScorer(backend)
    >>> with backend.dry() as plan:
    ...     _ = scorer.annotate(["wake me up at 7", "play jazz"], LabelSet.of(["alarm", "music"]))
    >>> plan.requests, plan.max_completion_tokens
    (5, 10)
    """

    counts_own_calls = True
    max_tokens = 2  # the letter, and room for a space or bracket before it

    def __init__(self, backend: ChatBackend, *, prompts: Prompts | None = None, calibrate: bool = True) -> None:
        super().__init__()
        self.backend = backend
        self.prompts = prompts or Prompts()
        self.calibrate = calibrate
        self._leans: dict[tuple[str, ...], np.ndarray] = {}  # per label set: what calibration takes away
        self.tokens = 0
        # scores of recent (labels, text) pairs: a re-ask within candidates reads them, not the server
        self._scores: OrderedDict[tuple[tuple[str, ...], str], np.ndarray] = OrderedDict()
        self._scores_size = 50_000

    @property
    def identity(self) -> str:
        p = self.prompts
        prompt = hashlib.sha256("\x00".join((p.options_system, p.options_query, p.options_none)).encode())
        calibrated = ":calibrated" if self.calibrate else ""
        return (f"{self.backend.model_id}:option-scoring:pages-of-{len(CODES)}:prompt-{prompt.hexdigest()[:8]}"
                f"{calibrated}")

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one entry per label set, for this scorer's life
    def _systems(self, labels: LabelSet) -> tuple[str, ...]:
        """Each page's system message: its lettered options (and "none of these" past one page)."""
        layout = pages(len(labels))
        systems = []
        for page in layout:
            options = [labels.labels[j] for j in page] + ([self.prompts.options_none] if len(layout) > 1 else [])
            systems.append(self.prompts.options_system.format(
                options="\n".join(f"{code}. {option}" for code, option in zip(CODES, options))))
        return tuple(systems)

    def _check(self, options: dict[ChatRequest, int]):
        """The backend's check of a reply: it names one of its request's options (see :func:`option_logprobs`)."""
        def check(request: ChatRequest, completion: Completion) -> str | None:
            if request not in options:  # a content-free text's: one naming no letter is left out
                return None
            try:
                if completion.logprobs is None:  # a text without them is the backend's own error (NoLogprobs)
                    raise NoOption("the reply is empty: it names no option letter")
                option_logprobs(completion.logprobs, options[request])
            except NoOption as exc:
                return (f"{exc}: the model does not answer with a letter, so it cannot score labels; "
                        f"{{=annotator}} {self.backend.model_id} takes labels from its answers instead")
            return None
        return check

    def requests(self, text: str, labels: LabelSet) -> list[ChatRequest]:
        """The requests that score ``text``: one per page of options."""
        query = {"role": "user", "content": self.prompts.options_query.format(text=text)}
        return [ChatRequest.of([{"role": "system", "content": system}, query], max_tokens=self.max_tokens,
                               top_logprobs=len(CODES)) for system in self._systems(labels)]

    def _learn_lean(self, completions: Sequence[Completion], labels: LabelSet) -> np.ndarray:
        """Per label, the log of its letter's mean probability over the content-free texts' replies
        (``completions``: each text's pages in turn). A reply naming no letter is left out; a page
        none names a letter on keeps zeros. Kept for the label set once every reply came back."""
        layout = pages(len(labels))
        none = int(len(layout) > 1)
        lean = np.zeros(len(labels))
        for k, page in enumerate(layout):
            shares = []
            for completion in completions[k::len(layout)]:
                try:
                    if completion.logprobs is not None:
                        shares.append(np.exp(option_logprobs(completion.logprobs, len(page) + none)))
                except NoOption:
                    continue
            if shares:
                lean[page.start:page.stop] = np.log(np.mean(shares, axis=0))[:len(page)]
        if all(c.logprobs is not None for c in completions):  # not a dry run's, nor a refused one's
            self._leans[labels.labels] = lean
        return lean

    def _row(self, completions: Sequence[Completion], labels: LabelSet) -> np.ndarray | None:
        """One text's score per label from its pages' completions (None: a page went unanswered)."""
        layout = pages(len(labels))
        none = int(len(layout) > 1)  # each page's last option is "none of these"
        row = np.empty(len(labels))
        for page, completion in zip(layout, completions):
            if completion.logprobs is None:  # refused, empty, or a dry run
                return None
            row[page.start:page.stop] = option_logprobs(completion.logprobs, len(page) + none)[:len(page)]
        return row

    def label_scores(self, texts: Sequence[str], labels: LabelSet) -> np.ndarray:
        """Shape (texts, labels): the log-probability of each label's option, less the log of its mean
        probability for the content-free texts when calibrating; NaN for a text whose requests were
        refused (or not sent: a dry run), which then has no answer."""
        todo = [t for t in dict.fromkeys(texts) if (labels.labels, t) not in self._scores]
        n = len(todo)
        layout = pages(len(labels))
        none = int(len(layout) > 1)
        # the content-free texts first, once per label set; then page by page: consecutive requests
        # share their system message, a prefix a server can keep computed (llama.cpp's key/value
        # cache) or bill at a discount (OpenAI's prompt caching)
        free = [r for t in CONTENT_FREE for r in self.requests(t, labels)] \
            if self.calibrate and n and labels.labels not in self._leans else []
        per_text = [self.requests(t, labels) for t in todo]
        options = {r: len(page) + none for rs in per_text for r, page in zip(rs, layout)}
        completions = self.backend.complete(free + ([r for page in zip(*per_text) for r in page] if n else []),
                                            check=self._check(options))
        self.calls += len(completions)
        self.tokens += sum(c.tokens for c in completions)
        lean = self._learn_lean(completions[:len(free)], labels) if free else \
            self._leans.get(labels.labels, np.zeros(len(labels)))
        completions = completions[len(free):]
        fresh = {}
        for i, text in enumerate(todo):
            row = self._row(completions[i::n], labels)
            if row is None:
                fresh[text] = np.full(len(labels), np.nan)  # asked again next time
                continue
            self._scores[(labels.labels, text)] = row - lean
            if len(self._scores) > self._scores_size:
                self._scores.popitem(last=False)
        rows = []
        for text in texts:
            key = (labels.labels, text)
            if key in self._scores:
                self._scores.move_to_end(key)
                rows.append(self._scores[key])
            else:
                rows.append(fresh[text])
        return np.stack(rows) if rows else np.empty((0, len(labels)))
