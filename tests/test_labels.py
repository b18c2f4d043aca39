import pytest

from cmalign import DataError, LabelSet, normalize


def test_normalize_ignores_case_separators_and_edge_punctuation():
    assert normalize("  'Refund_not-showing  up.' ") == "refund not showing up"
    assert normalize("english.stackexchange.com.txt") == "english stackexchange com txt"
    assert normalize("Card arrival") == normalize("card_arrival") == normalize("CARD-ARRIVAL!")


def test_normalize_keeps_inner_words_apart():
    assert normalize("top up failed") != normalize("top up reverted")


def test_resolve_mixed_case_gold_label_is_reachable():
    # the reference code lower-cased answers but not gold labels, so this label was never correct
    labels = LabelSet.of(["card arrival", "Refund not showing up"])
    resolved = labels.resolve("refund not showing up")
    assert resolved.label == "Refund not showing up"
    assert resolved.key == "Refund not showing up"


def test_resolve_strips_answer_prefix_and_extra_lines():
    labels = LabelSet.of(["card arrival", "pin blocked"])
    assert labels.resolve("Answer: Pin Blocked\nBecause the user ...").label == "pin blocked"
    assert labels.resolve("The label is card_arrival.").label == "card arrival"


def test_out_of_set_answer_keeps_a_normalised_key():
    labels = LabelSet.of(["card arrival", "pin blocked"])
    a, b = labels.resolve("ATM support"), labels.resolve("atm_support.")
    assert a.label is None and b.label is None
    assert a.key == b.key == "atm support"
    # a word that merely starts like a prefix is not stripped
    assert labels.resolve("classic rock").key == "classic rock"


def test_labels_equal_after_normalising_are_rejected():
    with pytest.raises(DataError, match="same once"):
        LabelSet.of(["Card arrival", "card_arrival"])


def test_of_keeps_first_appearance_order_and_drops_repeats():
    labels = LabelSet.of(["b", "a", "b", "c"])
    assert labels.labels == ("b", "a", "c")
    assert labels.index("c") == 2 and "a" in labels and "z" not in labels


def test_readable_drops_tokens_every_label_shares_and_prefers_descriptions():
    labels = LabelSet.of(["english.stackexchange.com.txt", "tor.stackexchange.com.txt"])
    assert labels.readable() == ["english", "tor"]
    described = LabelSet(("iot", "qa"), ("smart home devices", ""))
    assert described.readable() == ["smart home devices", "qa"]
