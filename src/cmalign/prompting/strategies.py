"""The paper's prompting strategies, each an annotator over a chat backend.

- ``vanilla``: the text and the allowed labels.
- ``cot``: the single most similar labelled example, its label and a one-line reason, then the text;
  the model gives its own reason, then ``Label: ...``. Each example's reason is written by the same
  model once (one request per distinct example, cached, and charged to the strategy).
- ``fot``: the ``k`` most similar labelled examples with their labels, then the text.
- ``consistent``: a vote over the vanilla, CoT and FoT answers. Ties go to an answer inside the label
  set, then to FoT over CoT over vanilla (the more of the user's examples a prompt shows, the more
  it is trusted).
- ``refine``: the vanilla answer; the model judges it Correct or Incorrect; when it says Incorrect it
  is asked for the right label, and that revision is the answer (even if it is outside the set).
  A judgement that says neither keeps the answer (see :func:`judged_wrong`).

Examples are retrieved with the embedded sentence encoder from the preference samples only (the
same labelled budget as the memory bank), never including a sample whose text is the item's own.

Every raw reply is parsed by :func:`parse_answer`; nothing a model says raises.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..annotators.base import Annotation, Annotator
from ..chat.backend import ChatBackend, ChatRequest, Completion, Message, check_sampling
from ..errors import CmalignError
from ..labels import LabelSet, Resolved, first_line, normalize
from ..settings import setting
from .prompts import Prompts
from .retrieval import ExampleRetriever

STRATEGIES = ("vanilla", "cot", "fot", "consistent", "refine")
NEEDS_EXAMPLES = {"cot", "fot", "consistent"}
_LABEL_LINE = re.compile(r"label\s*[:=]\s*(.*)", re.IGNORECASE)
_KEY_LIMIT = 80  # out-of-set answers are bank keys; a rambling reply is cut to its first words


def check_strategies(strategies: Sequence[str]) -> list[str]:
    """The strategies, each one of :data:`STRATEGIES`; one clear error naming the first that is not."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise CmalignError(f"unknown strategy {unknown[0]!r}; strategies: {', '.join(STRATEGIES)}")
    return list(strategies)


def parse_answer(raw: str, labels: LabelSet) -> Resolved:
    """Map a raw reply to a label, or to an out-of-set key, through the one normaliser.

    In order: the whole reply names a label; the text after its last ``Label:`` does; its first
    line names exactly one label as whole words (the longest, when one label contains another);
    otherwise it is out of the set, keyed by its normalised first line.

    >>> ls = LabelSet.of(["alarm", "music", "play"])
    >>> parse_answer("Reason: it asks for a song.\\nLabel: Music", ls).label
    'music'
    >>> parse_answer("The answer is: alarm.", ls).label
    'alarm'
    >>> parse_answer("I cannot help with that", ls)
    Resolved(key='i cannot help with that', label=None)
    """
    resolved = labels.resolve(raw)
    if resolved.label is not None:
        return resolved
    tagged = _LABEL_LINE.findall(raw)
    if tagged:
        after = labels.resolve(tagged[-1])
        if after.label is not None:
            return after
    first = normalize(tagged[-1] if tagged else first_line(raw))
    named = [label for label in labels.labels
             if re.search(rf"(?<!\w){re.escape(normalize(label))}(?!\w)", first)]
    if named:
        longest = max(named, key=lambda label: len(normalize(label)))
        if all(normalize(other) in normalize(longest) for other in named):
            return Resolved(key=longest, label=longest)
    return Resolved(key=first[:_KEY_LIMIT].strip(), label=None)


@dataclass(frozen=True)
class Decoding:
    """How replies are decoded; part of every request, so of every cache key.

    ``samples`` above 1 asks for that many answers to every answering prompt, with the seeds
    ``seed``, ``seed + 1``, ...: the answer is their vote and every sample's label is kept in
    :attr:`Annotation.votes`, the spread the methods read as the model's uncertainty.
    """

    temperature: float = setting(0.0, "chat strategies: sampling temperature (0: greedy)")
    top_p: float = setting(1.0, "chat strategies: nucleus sampling mass")
    seed: int = setting(0, "chat strategies: the model's sampling seed", name="--llm-seed")
    samples: int = setting(1, "chat strategies: answers asked per prompt at --temperature (seeds --llm-seed, +1, "
                           "...), their vote the answer and their spread the evidence")

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_p)
        if self.samples < 1:
            raise CmalignError(f"{{=samples}} {self.samples} is below 1")
        if self.samples > 1 and not self.temperature > 0:
            raise CmalignError(f"{{=samples}} {self.samples} needs a {{=temperature}} above 0: greedy answers "
                               "to one prompt are all the same")


@dataclass(frozen=True)
class _Reply:
    raw: str
    resolved: Resolved
    votes: tuple[str | None, ...] = ()  # every answer's label, where the reply is a vote


class ChatAnnotator(Annotator):
    """One prompting strategy over a chat backend.

    ``calls`` and ``tokens`` count the requests this strategy asked for and their tokens, whether
    the backend answered them from its cache or not: what the strategy costs on a cold cache.
    ``fot`` shows the most similar labelled examples first (``retriever``, an
    :class:`~cmalign.prompting.retrieval.ExampleRetriever` over the preference samples).

    Examples
    --------
    >>> from cmalign.method.examples import KeywordChat
    >>> annotator = ChatAnnotator(KeywordChat(), "vanilla")
    >>> said = annotator.annotate(["an alarm at 7", "some music please", "hello"], LabelSet(("alarm", "music")))
    >>> [(a.raw, a.label) for a in said], annotator.calls
    ([('alarm', 'alarm'), ('music', 'music'), ('no idea', None)], 3)
    """

    counts_own_calls = True
    max_tokens = {"answer": 24, "cot": 64, "reason": 40, "judge": 8}

    def __init__(self, backend: ChatBackend, strategy: str = "vanilla", *, prompts: Prompts | None = None,
                 retriever: ExampleRetriever | None = None, k: int = 5, decoding: Decoding | None = None) -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; strategies: {', '.join(STRATEGIES)}")
        if strategy in NEEDS_EXAMPLES and retriever is None:
            raise ValueError(f"strategy {strategy!r} needs labelled examples to retrieve from")
        if strategy == "refine" and decoding is not None and decoding.samples > 1:
            raise CmalignError("refine judges and revises one answer: {=samples} applies to vanilla, cot, fot "
                               "and consistent")
        self.backend = backend
        self.strategy = strategy
        self.prompts = prompts or Prompts()
        self.retriever = retriever
        self.k = k
        self.decoding = decoding or Decoding()
        self.tokens = 0
        self._reasons: dict[int, str] = {}

    @property
    def identity(self) -> str:
        d = self.decoding
        shots = f":k={self.k}" if self.strategy in ("fot", "consistent") else ""
        samples = f":samples={d.samples}" if d.samples > 1 else ""
        return (f"{self.backend.model_id}:{self.strategy}{shots}:prompts-{self.prompts.digest()}"
                f":t={d.temperature:g}:top_p={d.top_p:g}:seed={d.seed}{samples}")

    # -- requests ------------------------------------------------------------------------------

    def _ask(self, conversations: Sequence[list[Message]], step: str, samples: int = 1) -> list[Completion]:
        """Each conversation's completions, ``samples`` of them in a row (seeds ``seed`` onwards)."""
        d = self.decoding
        requests = [ChatRequest.of(messages, max_tokens=self.max_tokens[step], temperature=d.temperature,
                                   top_p=d.top_p, seed=d.seed + s)
                    for messages in conversations for s in range(samples)]
        completions = self.backend.complete(requests)
        self.calls += len(completions)
        self.tokens += sum(c.tokens for c in completions)
        return completions

    def _system(self, allowed: Sequence[str]) -> Message:
        return {"role": "system", "content": self.prompts.system.format(labels="\n".join(f"- {a}" for a in allowed))}

    def _answer(self, conversations: list[list[Message]], step: str, labels: LabelSet) -> list[_Reply]:
        n = self.decoding.samples
        replies = [_Reply(c.text, parse_answer(c.text, labels)) for c in self._ask(conversations, step, n)]
        if n == 1:
            return replies
        return [replace(vote(replies[i:i + n]), votes=tuple(r.resolved.label for r in replies[i:i + n]))
                for i in range(0, len(replies), n)]

    # -- strategies ----------------------------------------------------------------------------

    def _vanilla(self, texts, labels, allowed) -> list[_Reply]:
        return self._answer([self._first_turn(t, a) for t, a in zip(texts, allowed)], "answer", labels)

    def _first_turn(self, text: str, allowed: Sequence[str]) -> list[Message]:
        return [self._system(allowed), {"role": "user", "content": self.prompts.query.format(text=text)}]

    def _fot(self, texts, labels, allowed) -> list[_Reply]:
        p, pool = self.prompts, self.retriever
        conversations = []
        for text, allow, near in zip(texts, allowed, pool.nearest(texts, self.k)):
            if not near:  # nothing to show: the plain question
                conversations.append(self._first_turn(text, allow))
                continue
            examples = "\n\n".join(p.example.format(text=pool.texts[j], label=pool.labels[j]) for j in near)
            conversations.append([self._system(allow),
                                  {"role": "user", "content": p.few_shot.format(examples=examples, text=text)}])
        return self._answer(conversations, "answer", labels)

    def _cot(self, texts, labels, allowed) -> list[_Reply]:
        p, pool = self.prompts, self.retriever
        near = [n[0] if n else None for n in pool.nearest(texts, 1)]
        self._write_reasons(sorted({j for j in near if j is not None}), labels)
        conversations = []
        for text, allow, j in zip(texts, allowed, near):
            if j is None:  # nothing to show: the plain question
                conversations.append(self._first_turn(text, allow))
                continue
            example = p.reasoned_example.format(text=pool.texts[j], reason=self._reasons[j], label=pool.labels[j])
            conversations.append([self._system(allow),
                                  {"role": "user", "content": p.chain.format(example=example, text=text)}])
        return self._answer(conversations, "cot", labels)

    def _write_reasons(self, examples: list[int], labels: LabelSet) -> None:
        """Have the model write the one-line reason for each example's label (asked once per example)."""
        todo = [j for j in examples if j not in self._reasons]
        pool = self.retriever
        conversations = [[self._system(labels.labels),
                          {"role": "user", "content": self.prompts.reason.format(text=pool.texts[j],
                                                                                   label=pool.labels[j])}]
                         for j in todo]
        for j, completion in zip(todo, self._ask(conversations, "reason")):
            self._reasons[j] = first_line(completion.text) or "(no reason given)"

    def _consistent(self, texts, labels, allowed) -> list[_Reply]:
        votes = [self._vanilla(texts, labels, allowed), self._cot(texts, labels, allowed),
                 self._fot(texts, labels, allowed)]
        return [replace(vote(replies), votes=tuple(v for r in replies for v in r.votes or (r.resolved.label,)))
                for replies in zip(*votes)]

    def _refine(self, texts, labels, allowed) -> list[_Reply]:
        first = [self._first_turn(t, a) for t, a in zip(texts, allowed)]
        answers = self._answer(first, "answer", labels)
        judged = [conv + [{"role": "assistant", "content": a.raw},
                          {"role": "user", "content": self.prompts.judge.format(answer=first_line(a.raw))}]
                  for conv, a in zip(first, answers)]
        verdicts = self._ask(judged, "judge")
        wrong = [i for i, v in enumerate(verdicts) if judged_wrong(v.text)]
        revise = [judged[i] + [{"role": "assistant", "content": verdicts[i].text},
                               {"role": "user", "content": self.prompts.revise}] for i in wrong]
        for i, revision in zip(wrong, self._answer(revise, "answer", labels)):
            answers[i] = revision
        return answers

    def _annotate(self, texts: Sequence[str], labels: LabelSet,
                  candidates: Sequence[tuple[str, ...] | None]) -> list[Annotation]:
        allowed = [c if c is not None else labels.labels for c in candidates]
        replies = getattr(self, f"_{self.strategy}")(list(texts), labels, allowed)
        return [Annotation(raw=r.raw, key=r.resolved.key, label=r.resolved.label, votes=r.votes) for r in replies]


def judged_wrong(verdict: str) -> bool:
    """Whether a judgement says the answer was wrong: its first word, else an unnegated 'incorrect'/'wrong'.

    >>> [judged_wrong(v) for v in ("Incorrect.", "Correct", "It is not incorrect", "That label is wrong")]
    [True, False, False, True]
    """
    line = normalize(first_line(verdict))
    if re.match(r"(?:incorrect|wrong|no|not correct)\b", line):
        return True
    if re.match(r"(?:correct|right|yes)\b", line):
        return False
    return re.search(r"(?<!\bnot )\b(?:incorrect|wrong)\b", line) is not None


def vote(replies: Sequence[_Reply]) -> _Reply:
    """The answer most replies give (by bank key); ties go to an in-set answer, then to the later reply.

    Replies come in the order vanilla, CoT, FoT, so a tie between in-set answers goes to FoT.
    """
    counts = Counter(r.resolved.key for r in replies)
    best = max(range(len(replies)), key=lambda i: (counts[replies[i].resolved.key],
                                                   replies[i].resolved.label is not None, i))
    return replies[best]
