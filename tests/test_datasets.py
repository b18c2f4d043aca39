import pytest

from cmalign import DataError
from cmalign.data import Budget, bundled_names, load_bundled, load_folder, protocol_split

SIZES = {  # (labels, large, small) as documented in SOURCES.md
    "banking77": (77, 10003, 3080), "clinc": (150, 15000, 4500), "massive_scenario": (18, 11514, 2974),
    "mtop_intent": (102, 15638, 4386), "stackexchange": (121, None, 4156),
}


def test_all_five_paper_datasets_are_bundled_with_their_sizes():
    assert bundled_names() == sorted(SIZES)
    for name, (n_labels, n_large, n_small) in SIZES.items():
        ds = load_bundled(name)
        assert len(ds.labels) == n_labels
        assert (None if ds.large is None else len(ds.large)) == n_large
        assert len(ds.small) == n_small


def test_protocol_split_matches_the_paper_and_is_seeded():
    ds = load_bundled("banking77")
    split = protocol_split(ds, Budget(fraction=0.05), seed=0)
    assert len(split.preference) == 500 and len(split.evaluation) == 3080
    assert split == protocol_split(ds, Budget(fraction=0.05), seed=0)
    other = protocol_split(ds, Budget(fraction=0.05), seed=1)
    assert {i.line for i in other.preference} != {i.line for i in split.preference}
    assert len(protocol_split(ds, Budget(count=37), seed=0).preference) == 37


def test_small_only_dataset_samples_from_small_and_evaluates_the_rest():
    ds = load_bundled("stackexchange")
    split = protocol_split(ds, Budget(fraction=0.01), seed=0)
    assert len(split.preference) == 42
    assert len(split.preference) + len(split.evaluation) == 4156
    assert not {i.line for i in split.preference} & {i.line for i in split.evaluation}


@pytest.mark.parametrize("text", ["0", "1.5", "-0.1", "abc", "n=0", "nan"])
def test_bad_budgets_are_refused(text):
    with pytest.raises(DataError, match="budget"):
        Budget.parse(text)


def test_budget_forms():
    assert Budget.parse("5%").size(10003) == 500
    assert Budget.parse("n=12").size(10003) == 12
    assert Budget.parse("1").size(7) == 7


def test_budget_larger_than_the_pool():
    with pytest.raises(DataError, match="has 4155 to draw from"):
        protocol_split(load_bundled("stackexchange"), Budget(fraction=1.0), seed=0)


def test_user_folder_with_only_small(tmp_path):
    (tmp_path / "small.jsonl").write_text(
        "".join(f'{{"text": "t{i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(10)))
    ds = load_folder(tmp_path)
    assert ds.large is None and ds.labels.labels == ("a", "b")
    split = protocol_split(ds, Budget(fraction=0.3), seed=0)
    assert len(split.preference) == 3 and len(split.evaluation) == 7
    with pytest.raises(DataError, match="holds neither"):
        (tmp_path / "empty").mkdir()
        load_folder(tmp_path / "empty")
