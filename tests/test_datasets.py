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


def _lines(path):
    import json
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_datasets_write_gives_the_protocol_split_as_files_the_commands_read(tmp_path, capsys):
    from cmalign.cli import main
    from cmalign.data import read_items, read_labelset
    folder = tmp_path / "new" / "example"  # made, parents too
    assert main(["datasets", "--write", "massive_scenario", str(folder), "--budget", "0.02", "--seed", "1"]) == 0
    ds = load_bundled("massive_scenario")
    split = protocol_split(ds, Budget(fraction=0.02), seed=1)
    prefs = read_items(folder / "prefs.jsonl", require_labels=True)
    assert [(i.text, i.label) for i in prefs] == [(i.text, i.label) for i in split.preference]
    items = _lines(folder / "items.jsonl")
    assert [(r["text"], r["gold"]) for r in items] == [(i.text, i.label) for i in split.evaluation]
    assert all("label" not in r for r in items)  # the items to label carry no label a reader would take as given
    assert read_labelset(folder / "labels.txt").labels == ds.labels.labels
    assert "230 labelled items, 2974 items to label" in capsys.readouterr().err


def test_datasets_write_refuses_to_replace_files_unless_told(tmp_path, capsys):
    from cmalign.cli import main
    (tmp_path / "items.jsonl").write_text('{"text": "mine"}\n')
    assert main(["datasets", "--write", "massive_scenario", str(tmp_path), "--budget", "n=20"]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("items.jsonl: exists already: --overwrite to replace it") and err.count("\n") == 1
    assert (tmp_path / "items.jsonl").read_text() == '{"text": "mine"}\n'
    assert not (tmp_path / "prefs.jsonl").exists()  # checked before the first file is written
    assert main(["datasets", "--write", "massive_scenario", str(tmp_path), "--budget", "n=20", "--overwrite"]) == 0
    assert len(_lines(tmp_path / "prefs.jsonl")) == 20 and len(_lines(tmp_path / "items.jsonl")) == 2974


@pytest.mark.parametrize("argv, message", [
    (["datasets", "--write", "nope", "X"], "no bundled dataset 'nope'"),
    (["datasets", "--write", "banking77", "X", "--budget", "2"], "budget 2 is not a fraction"),
    (["datasets", "--write", "banking77", "X", "--seed", "-1"], "--seed -1: a seed is a whole number"),
])
def test_datasets_write_names_a_bad_setting_in_one_line(tmp_path, capsys, argv, message):
    from cmalign.cli import main
    argv = [str(tmp_path / "out") if a == "X" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_datasets_write_refuses_a_file_where_the_folder_should_be(tmp_path, capsys):
    from cmalign.cli import main
    (tmp_path / "f").write_text("x")
    assert main(["datasets", "--write", "banking77", str(tmp_path / "f")]) == 2
    assert "f: is not a folder" in capsys.readouterr().err
