"""Prompting strategies, prompts and parsing; generation on the real SmolLM2 through transformers."""

from __future__ import annotations

import pytest

from cmalign import LabelSet
from cmalign.chat.backend import ChatRequest, Completion, ResponseCache
from cmalign.prompting.prompts import Prompts
from cmalign.prompting.strategies import (ChatAnnotator, ExampleRetriever, _Reply, judged_wrong, parse_answer,
                                           vote)
from cmalign.cli import main
from cmalign.errors import CmalignError, DataError

LABELS = LabelSet.of(["alarm", "weather", "play music", "music", "calendar"])
POOL_TEXTS = ["wake me up at six", "is it sunny outside", "put on some rock", "what is on my agenda",
              "set an alarm for noon", "will it snow"]
POOL_LABELS = ["alarm", "weather", "play music", "calendar", "alarm", "weather"]
TEXTS = ["wake me at seven tomorrow", "will it rain today", "play something by queen"]


# -- parsing and voting (pure) ----------------------------------------------------------------

@pytest.mark.parametrize("raw, label", [
    ("alarm", "alarm"), ("  'Weather'. ", "weather"), ("Label: calendar", "calendar"),
    ("Reason: it asks for a song.\nLabel: play_music", "play music"),
    ("The answer is: alarm.", "alarm"),
    ("I would say play music here", "play music"),  # 'music' is inside 'play music': the longer wins
    ("alarm or weather, hard to say", None),          # two labels named: not guessed
    ("", None), ("Label:", None),
])
def test_parse_answer(raw, label):
    assert parse_answer(raw, LABELS).label == label


def test_out_of_set_answers_are_keys_of_their_first_line():
    resolved = parse_answer("Set A Reminder!\nbecause it is a reminder", LABELS)
    assert resolved.label is None and resolved.key == "set a reminder"
    assert len(parse_answer("word " * 100, LABELS).key) <= 80


def _reply(raw):
    return _Reply(raw, parse_answer(raw, LABELS))


def test_consistent_vote_and_its_tie_rule():
    # (vanilla, cot, fot)
    assert vote([_reply("alarm"), _reply("weather"), _reply("alarm")]).raw == "alarm"
    assert vote([_reply("alarm"), _reply("weather"), _reply("calendar")]).raw == "calendar"  # fot wins ties
    assert vote([_reply("alarm"), _reply("weather"), _reply("no idea")]).raw == "weather"  # in-set before fot
    assert vote([_reply("no idea"), _reply("No idea."), _reply("alarm")]).resolved.key == "no idea"  # 2 votes


@pytest.mark.parametrize("verdict, wrong", [
    ("Incorrect.", True), ("incorrect, it should be music", True), ("No.", True), ("Wrong", True),
    ("Correct", False), ("Yes, that is right", False), ("The original sentence is not incorrect.", False),
    ("I think the label is wrong here", True), ("", False), ("The answer is alarm", False),
])
def test_judgement_parsing(verdict, wrong):
    assert judged_wrong(verdict) is wrong


# -- prompts --------------------------------------------------------------------------------

def test_prompts_round_trip_through_their_toml(tmp_path):
    path = tmp_path / "prompts.toml"
    path.write_text(Prompts().to_toml())
    assert Prompts.load(path) == Prompts()
    path.write_text('query = """\nMessage: {text}\nCategory:"""\n')
    mine = Prompts.load(path)
    assert mine.query == "Message: {text}\nCategory:" and mine.system == Prompts().system
    assert mine.digest() != Prompts().digest()


@pytest.mark.parametrize("content, problem", [
    ('querry = "x {text}"', "unknown template 'querry'"),
    ('query = "Text: {txt}"', "template 'query' uses {txt}"),
    ('query = "no text field"', "template 'query' must use {text}"),
    ('query = "{text"', "template 'query'"),
    ('query = 3', "must be a string"),
    ('query = """unterminated', "not a valid TOML file"),
])
def test_bad_prompt_files_are_refused_with_the_file_named(tmp_path, content, problem):
    path = tmp_path / "p.toml"
    path.write_text(content)
    with pytest.raises(DataError, match=problem) as error:
        Prompts.load(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("template, written", [
    ("Text: {text:d}", "{text:d}"), ("Text: {text!r}", "{text!r}"), ("Text: {text:>{labels}}", "{text:>{labels}}"),
    ("Text: {text!x}", "{text!x}"),
])
def test_templates_with_a_format_spec_or_conversion_are_refused_when_loaded(tmp_path, capsys, template, written):
    # each would pass a check of field names and fail only when the first request is built
    path = tmp_path / "p.toml"
    path.write_text(f"query = {template!r}\n".replace("'", '"'))
    message = f"{path}: template 'query' writes {written}; a field is filled in as it is: write {{text}}"
    with pytest.raises(DataError) as error:
        Prompts.load(path)
    assert str(error.value) == message
    assert main(["prompts", "--prompts", str(path)]) == 2
    assert capsys.readouterr().err == f"cmalign: error: {message}\n"


@pytest.mark.parametrize("template", ["Text: {text.upper}", "Text: {text[0]}", "Text: {} {text}", "Text: {0} {text}"])
def test_templates_with_attributes_indexes_or_positions_are_refused_when_loaded(tmp_path, template):
    path = tmp_path / "p.toml"
    path.write_text(f"query = {template!r}\n".replace("'", '"'))
    with pytest.raises(DataError, match=r"template 'query' uses \{.*\}; it may use only \{text\}"):
        Prompts.load(path)


def test_prompts_command_prints_the_templates_in_use(capsys, tmp_path):
    assert main(["prompts"]) == 0
    assert capsys.readouterr().out == Prompts().to_toml()
    mine = tmp_path / "p.toml"
    mine.write_text('revise = "Try again."\n')
    assert main(["prompts", "--prompts", str(mine)]) == 0
    assert 'revise = """\nTry again."""' in capsys.readouterr().out
    mine.write_text('revise = "{answer}"\n')
    assert main(["prompts", "--prompts", str(mine)]) == 2
    assert "template 'revise' uses {answer}" in capsys.readouterr().err


# -- retrieval --------------------------------------------------------------------------------

def test_retrieval_finds_the_similar_examples_and_never_the_item_itself(encoder):
    pool = ExampleRetriever(encoder, POOL_TEXTS, POOL_LABELS)
    near = pool.nearest(["set an alarm for noon", "will it snow tonight"], 2)
    assert 4 not in near[0] and POOL_LABELS[near[0][0]] == "alarm"  # its own text is skipped
    assert POOL_LABELS[near[1][0]] == "weather" and len(near[1]) == 2


# -- generation on the real model --------------------------------------------------------------

@pytest.fixture(scope="module")
def generator(scorer, smollm2_path):
    from cmalign.chat.hf_chat import HFChatBackend

    return HFChatBackend(smollm2_path, batch_size=4, loaded=(scorer.tokenizer, scorer.model, smollm2_path))


def _conversation(text):
    return [{"role": "system", "content": "Label the text: alarm, weather or music."},
            {"role": "user", "content": text}]


def test_batched_generation_equals_one_at_a_time(generator):
    # left padding and batching are an optimisation: the answers must not change
    texts = ["wake me", "will it rain over the weekend in paris", "play jazz", "hi"]
    requests = [ChatRequest.of(_conversation(t), max_tokens=10) for t in texts]
    batched = generator.complete(requests)
    alone = [generator._generate([generator._prompt_ids(r)], r)[0] for r in requests]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert all(c.text and 0 < c.completion_tokens <= 10 and c.prompt_tokens > 10 for c in batched)
    assert generator.complete(requests) == [Completion(**{**c.__dict__, "cached": True}) for c in batched]


def test_sampling_is_reproducible_by_seed(generator):
    request = ChatRequest.of(_conversation("play something"), max_tokens=12, temperature=0.9, top_p=0.95, seed=7)
    fresh = type(generator)(generator.path, loaded=(generator.tokenizer, generator.model, generator.path))
    assert fresh.complete([request])[0].text == generator.complete([request])[0].text


def test_a_dry_run_counts_the_exact_prompt_tokens_of_a_local_model_and_sends_nothing(generator):
    requests = [ChatRequest.of(_conversation(t), max_tokens=6) for t in ("wake me up at 5", "sunny today?")]
    cached = ChatRequest.of(_conversation("play jazz"), max_tokens=10)
    generator.complete([cached])
    dry = type(generator)(generator.path, loaded=(generator.tokenizer, generator.model, generator.path),
                          cache=generator.cache)
    stored = len(dry.cache)
    with dry.dry() as plan:
        replies = dry.complete([*requests, cached])
        assert [r.text for r in replies[:2]] == ["", ""] and replies[2].text and replies[2].cached
        assert dry.usage.sent == 0 and plan.cache_hits == 1 and len(dry.cache) == stored
        assert (plan.requests, plan.max_completion_tokens, plan.asked) == (2, 12, 3)
        dry.complete(requests[:1])  # asked again later in the same run: a real run would find it in the cache
        assert plan.requests == 2 and plan.cache_hits == 2
    assert dry.usage.requests == 0 and not dry.dry_run  # a plan is not usage, and the block ends it
    real = generator.complete(requests)
    assert plan.prompt_tokens == sum(r.prompt_tokens for r in real)


SHORT = {"answer": 10, "cot": 20, "reason": 10, "judge": 4}  # short replies: the tests' time is in generation


def _annotator(generator, strategy, **options):
    pool = ExampleRetriever(options.pop("encoder"), POOL_TEXTS, POOL_LABELS)
    return ChatAnnotator(generator, strategy, retriever=pool, k=3, **options)


@pytest.mark.parametrize("strategy", ["vanilla", "cot", "fot", "consistent", "refine"])
def test_every_strategy_answers_every_item_on_the_real_model(generator, encoder, strategy):
    annotator = _annotator(generator, strategy, encoder=encoder)
    annotator.max_tokens = SHORT
    answers = annotator.annotate(TEXTS, LABELS)
    assert len(answers) == 3 and all(a.raw for a in answers)
    # each answer is what the one parser makes of the model's reply (a label, or a bank key for it)
    assert [(a.key, a.label) for a in answers] == [(r.key, r.label) for r in (parse_answer(a.raw, LABELS) for a in answers)]
    # cot: one reason per distinct example shown; consistent: vanilla + cot + fot
    expected = {"vanilla": 3, "fot": 3, "cot": 3 + 3, "consistent": 3 + 6 + 3}
    if strategy in expected:
        assert annotator.calls == expected[strategy]
    else:  # refine: an answer and a verdict each, and a revision where the verdict was "wrong"
        assert 6 <= annotator.calls <= 9
    assert annotator.tokens > 0
    reask = annotator.annotate(TEXTS[:1], LABELS, candidates=[("music", "play music")])
    assert len(reask) == 1  # validated by CM, not here: the model may still answer outside the set
    assert strategy in annotator.identity and generator.model_id in annotator.identity


def test_consistent_keeps_the_real_models_votes_for_the_methods(generator, encoder):
    """The no-score path on the real model: ``consistent`` keeps its three answers as votes, each
    counted in the distribution the score-based methods read."""
    from cmalign.method.evidence import answer_distribution

    annotator = _annotator(generator, "consistent", encoder=encoder)
    annotator.max_tokens = SHORT
    for a in annotator.annotate(TEXTS[:1], LABELS):
        assert len(a.votes) == 3 and a.label in (*a.votes, None)
        A = answer_distribution(a, LABELS)
        assert A.sum() == pytest.approx(1.0) and A.min() > 0
        for label in set(a.votes) - {None}:  # each in-set vote counts once more than a label nobody said
            assert A[LABELS.index(label)] == pytest.approx((a.votes.count(label) + 1 / 5) / (4 - a.votes.count(None)))


def test_refine_really_uses_the_revision(generator, encoder):
    # SmolLM2 seldom judges itself wrong (about one answer in ten), so two verdicts are planted in the
    # response cache (as if the model had said them); the answers, the third verdict and the revision
    # come from the model
    annotator = _annotator(generator, "refine", encoder=encoder)
    annotator.max_tokens = SHORT
    prompts, model = annotator.prompts, generator.model_id
    system = {"role": "system", "content": prompts.system.format(labels="\n".join(f"- {x}" for x in LABELS))}

    def ask(messages, step):
        return ChatRequest.of(messages, max_tokens=SHORT[step])

    firsts = [[system, {"role": "user", "content": prompts.query.format(text=t)}] for t in TEXTS[:2]]
    replies = generator.complete([ask(f, "answer") for f in firsts])
    judged = [f + [{"role": "assistant", "content": r.text},
                   {"role": "user", "content": prompts.judge.format(answer=r.text.splitlines()[0])}]
              for f, r in zip(firsts, replies)]
    for conversation, verdict in zip(judged, ["Incorrect.", "Correct"]):
        request = ask(conversation, "judge")
        generator.cache.put(request.key(model), model, request, Completion(verdict, 0, 0))
    sent = generator.usage.sent
    final = annotator.annotate(TEXTS[:2], LABELS)
    assert generator.usage.sent == sent + 1  # only the revision of the first item was new
    revise = judged[0] + [{"role": "assistant", "content": "Incorrect."}, {"role": "user", "content": prompts.revise}]
    (revision,) = generator.complete([ask(revise, "answer")])
    assert revision.cached and final[0].raw == revision.text
    assert final[1].raw == replies[1].text
    assert annotator.calls == 2 + 2 + 1


def test_a_strategy_that_needs_examples_refuses_to_run_without_them(generator):
    with pytest.raises(ValueError, match="needs labelled examples"):
        ChatAnnotator(generator, "fot")


def test_bench_with_the_local_generating_model(capsys, smollm2_path, tmp_path):
    code = main(["bench", "--dataset", "massive_scenario", "--budget", "n=4", "--seed", "0", "--limit", "2",
                 "--annotator", f"hf:{smollm2_path}", "--strategies", "vanilla,fot", "--json",
                 "--cache", str(tmp_path / "c.sqlite")])
    out, err = capsys.readouterr()
    assert code == 0, err
    import json

    result = json.loads(out)
    assert {"vanilla", "vanilla+cm", "fot", "fot+cm"} <= set(result["methods"])
    assert result["methods"]["vanilla"]["annotator_calls"] == 2
    assert result["usage"]["sent"] > 0 and "hf:SmolLM2" in err


def test_strategies_need_a_chat_model(capsys):
    assert main(["bench", "--dataset", "massive_scenario", "--strategies", "fot"]) == 2
    assert "--strategies needs a chat model" in capsys.readouterr().err
    assert main(["bench", "--dataset", "massive_scenario", "--annotator", "openai:x", "--strategies", "cott"]) == 2
    assert "unknown strategy 'cott'" in capsys.readouterr().err


def test_a_cache_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "cache.sqlite"
    bad.write_text("not a database")
    with pytest.raises(CmalignError, match="cannot use as a response cache"):
        ResponseCache(bad)


# -- sampled answers (--samples) ----------------------------------------------------------------

class _BySeed:
    """A chat backend whose answer depends on the request's seed only: what sampling looks like."""

    model_id = "by-seed"

    def __init__(self, answers):
        self.answers, self.requests = answers, []

    def complete(self, requests):
        self.requests.extend(requests)
        return [Completion(self.answers[r.seed % len(self.answers)], 10, 2) for r in requests]


def test_samples_are_asked_with_successive_seeds_and_their_vote_is_the_answer():
    from cmalign.method.evidence import answer_distribution
    from cmalign.prompting.strategies import Decoding

    backend = _BySeed(["alarm", "weather", "alarm", "nonsense"])
    annotator = ChatAnnotator(backend, "vanilla", decoding=Decoding(temperature=0.7, seed=4, samples=3))
    (answer,) = annotator.annotate(["wake me at seven"], LABELS)
    assert [r.seed for r in backend.requests] == [4, 5, 6] and {r.temperature for r in backend.requests} == {0.7}
    # seeds 4, 5, 6 answer alarm (4 % 4 = 0), weather, alarm: alarm by two votes to one
    assert answer.label == "alarm" and answer.votes == ("alarm", "weather", "alarm") and annotator.calls == 3
    A = answer_distribution(answer, LABELS)
    assert A[LABELS.index("alarm")] == pytest.approx((2 + 1 / 5) / 4)
    assert A[LABELS.index("weather")] == pytest.approx((1 + 1 / 5) / 4)
    assert ":samples=3" in annotator.identity
    assert ":samples" not in ChatAnnotator(backend, "vanilla", decoding=Decoding(temperature=0.7)).identity


def test_consistent_with_samples_keeps_every_sample_of_its_three_strategies(encoder):
    from cmalign.prompting.strategies import Decoding

    backend = _BySeed(["alarm", "weather"])
    annotator = ChatAnnotator(backend, "consistent", retriever=ExampleRetriever(encoder, POOL_TEXTS, POOL_LABELS),
                              k=2, decoding=Decoding(temperature=0.7, samples=2))
    (answer,) = annotator.annotate(["wake me at seven"], LABELS)
    assert answer.votes == ("alarm", "weather") * 3  # vanilla's two, cot's two, fot's two


FLAGS = {"samples": "--samples", "temperature": "--temperature", "top_p": "--top-p"}


@pytest.mark.parametrize("decoding, message", [
    (dict(samples=3), "--samples 3 needs a --temperature above 0"),
    (dict(samples=0, temperature=0.7), "--samples 0 is below 1"),
])
def test_samples_without_sampling_are_refused(decoding, message):
    from cmalign.prompting.strategies import Decoding

    with pytest.raises(CmalignError) as error:
        Decoding(**decoding)
    assert error.value.render(FLAGS).startswith(message)  # the command line's spelling
    assert str(error.value).startswith(message.replace("--", ""))  # the library's: the parameter


@pytest.mark.parametrize("decoding, message", [
    (dict(temperature=float("nan")), "temperature nan: must be a finite number, 0 or more (0: greedy)"),
    (dict(temperature=-3.0), "temperature -3.0: must be a finite number, 0 or more (0: greedy)"),
    (dict(temperature=float("inf")), "temperature inf: must be a finite number, 0 or more (0: greedy)"),
    (dict(top_p=-5.0), "top_p -5.0: must be above 0 and at most 1"),
    (dict(top_p=0.0), "top_p 0.0: must be above 0 and at most 1"),
    (dict(top_p=1.5), "top_p 1.5: must be above 0 and at most 1"),
    (dict(top_p=float("nan")), "top_p nan: must be above 0 and at most 1"),
])
def test_sampling_settings_no_server_can_honour_are_refused_where_they_are_made(decoding, message):
    from cmalign.prompting.strategies import Decoding

    with pytest.raises(CmalignError) as error:
        Decoding(**decoding)
    assert str(error.value) == message
    with pytest.raises(CmalignError) as error:  # a request built by hand is held to the same
        ChatRequest.of([{"role": "user", "content": "hi"}], **decoding)
    assert str(error.value) == message
    assert Decoding(temperature=0.0, top_p=1.0) == Decoding()  # the defaults, and the bounds they sit on


def test_refine_refuses_samples():
    from cmalign.prompting.strategies import Decoding

    with pytest.raises(CmalignError, match="refine judges and revises one answer"):
        ChatAnnotator(_BySeed(["alarm"]), "refine", decoding=Decoding(temperature=0.7, samples=2))


def test_sampled_answers_of_the_real_model_are_its_votes(generator, encoder):
    from cmalign.prompting.strategies import Decoding

    annotator = _annotator(generator, "vanilla", encoder=encoder, decoding=Decoding(temperature=1.0, samples=3))
    annotator.max_tokens = SHORT
    (answer,) = annotator.annotate(TEXTS[:1], LABELS)
    assert annotator.calls == 3 and len(answer.votes) == 3
    assert answer.label in (*answer.votes, None)
    # each sample is its own request in the cache: asked again, none is generated anew
    sent = generator.usage.sent
    assert annotator.annotate(TEXTS[:1], LABELS)[0].votes == answer.votes and generator.usage.sent == sent
