import pytest

from cmalign import ConsistentMarginalization, DataError, LabelSet, Rule
from cmalign.method import Action

from scripted import ScriptedAnnotator

LABELS = LabelSet.of(["card arrival", "card swallowed", "atm support", "pin blocked", "lost card"])

# preference samples: what the annotator says for each text, and what the user meant
PREFS = {
    "p1": ("atm support", "card swallowed"),
    "p2": ("atm support", "atm support"),
    "p3": ("atm support", "card swallowed"),
    "p4": ("card arrival", "lost card"),       # a single, different meaning: remap candidate
    "p5": ("pin blocked", "pin blocked"),      # a single, same meaning
    "p6": ("Something else", "lost card"),     # out-of-set answer, single meaning
}
NEW = {"n1": "atm support", "n2": "card arrival", "n3": "pin blocked", "n4": "card swallowed",
       "n5": "something else!", "n6": "totally new"}


def fitted(rule, reasks=None):
    answers = {t: a for t, (a, _) in PREFS.items()} | NEW
    annotator = ScriptedAnnotator(answers, reasks)
    cm = ConsistentMarginalization(annotator, rule=rule).fit(
        list(PREFS), [y for _, y in PREFS.values()], label_set=LABELS)
    return cm, annotator


def test_paper_rule_reasks_only_ambiguous_answers_and_keeps_the_rest():
    cm, annotator = fitted(Rule.PAPER, reasks={"n1": "card swallowed"})
    calls_after_fit = annotator.calls
    decisions = dict(zip(NEW, cm.decide(list(NEW))))
    assert annotator.restricted_calls == [("n1", ("card swallowed", "atm support"))]
    assert decisions["n1"].action is Action.REASK and decisions["n1"].label == "card swallowed"
    assert decisions["n2"].action is Action.KEEP and decisions["n2"].label == "card arrival"
    assert decisions["n3"].label == "pin blocked"
    assert decisions["n4"].action is Action.UNSEEN and decisions["n4"].label == "card swallowed"
    assert decisions["n5"].action is Action.KEEP and decisions["n5"].label is None  # out of set stays wrong
    assert decisions["n6"].action is Action.UNSEEN and decisions["n6"].label is None
    assert annotator.calls - calls_after_fit == len(NEW) + 1  # one re-ask


def test_remap_rule_replaces_single_candidate_answers():
    cm, _ = fitted(Rule.REMAP, reasks={"n1": "atm support"})
    decisions = dict(zip(NEW, cm.decide(list(NEW))))
    assert decisions["n2"].action is Action.REMAP and decisions["n2"].label == "lost card"
    assert decisions["n5"].action is Action.REMAP and decisions["n5"].label == "lost card"
    assert decisions["n3"].action is Action.KEEP
    assert decisions["n1"].label == "atm support"


def test_reask_answer_outside_the_candidates_is_not_trusted():
    cm, _ = fitted(Rule.PAPER, reasks={"n1": "pin blocked"})
    d = cm.decide(["n1"])[0]
    assert d.action is Action.REASK_INVALID
    assert d.label == "card swallowed"  # the most frequent candidate
    assert d.reask.label == "pin blocked"


def test_predict_gives_labels_and_rules_are_selectable_by_name():
    cm, _ = fitted("remap", reasks={"n1": "card swallowed"})
    assert cm.predict(["n1", "n2"]) == ["card swallowed", "lost card"]
    bogus = ConsistentMarginalization(ScriptedAnnotator({"p1": "atm support", "p5": "pin blocked"}),
                                      rule="bogus")  # stored as given
    with pytest.raises(ValueError, match="bogus"):
        bogus.fit(["p1", "p5"], ["atm support", "pin blocked"])


def test_given_answers_are_not_asked_again():
    cm, annotator = fitted(Rule.PAPER, reasks={"n1": "card swallowed"})
    answers = annotator.annotate(["n2", "n3"], LABELS)
    before = annotator.calls
    cm.decide(["n2", "n3"], answers=answers)
    assert annotator.calls == before


def test_bank_from_another_annotator_is_refused():
    cm, _ = fitted(Rule.PAPER)

    class Other(ScriptedAnnotator):
        @property
        def identity(self):
            return "other"

    with pytest.raises(DataError, match="fitted with annotator 'scripted'"):
        ConsistentMarginalization.from_bank(Other({}), cm.bank_)


def test_candidate_sets_outside_the_label_set_are_a_bug_not_a_guess():
    annotator = ScriptedAnnotator({"x": "card arrival"})
    with pytest.raises(ValueError):
        annotator.annotate(["x"], LABELS, candidates=[("not a label",)])
