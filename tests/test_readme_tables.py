"""Every benchmark table on the README and the docs pages is the one benchmarks/render.py writes from
the kept JSON: a table edited by hand, or JSON measured anew and not rendered, fails here."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def render():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import render
    finally:
        sys.path.pop(0)
    return render


def test_every_marked_table_on_every_page_is_rendered_from_its_json(render):
    blocks = render.blocks()
    assert {"summary", "accuracy-bge-small", "accuracy-minilm", "speed", "throughput", "scale",
            "llm-strategies", "selection", "review"} <= set(blocks)
    placed = set()
    for page in render.pages():
        text = page.read_text()
        for name in render.MARKED.findall(text):
            found = re.search(rf"<!-- bench:{re.escape(name)} -->\n(.*?)<!-- /bench:{re.escape(name)} -->", text, re.S)
            assert found is not None, f"{page.name}: <!-- bench:{name} --> has no closing marker"
            assert name in blocks, f"{page.name}: no JSON is kept for the table {name}"
            assert found[1] == blocks[name] + "\n", f"{page.name}'s {name} table is not what benchmarks/render.py writes"
            placed.add(name)
    assert set(blocks) <= placed, f"tables rendered but on no page: {set(blocks) - placed}"


def test_rendering_the_committed_json_again_changes_no_page(render):
    assert render.main(["--check"]) == 0


def test_every_rendered_table_says_where_its_figures_came_from(render):
    for name, block in render.blocks().items():
        if name == "llm-strategies" and "Not yet measured" in block:
            continue
        said = "*Measured by `" in block or "Measured by:\n\n- `" in block  # one source, or a list of them
        assert said and " cores (" in block and "code `" in block, name


def test_a_table_edited_by_hand_is_caught(render, tmp_path):
    name, block = next(iter(render.blocks().items()))
    page = f"<!-- bench:{name} -->\n{block.replace('0.', '1.', 1)}\n<!-- /bench:{name} -->\n"
    assert render.render(page, render.blocks()) != page
