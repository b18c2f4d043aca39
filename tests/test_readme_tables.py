"""The README's benchmark tables are the ones benchmarks/render.py writes from the kept JSON: a
table edited by hand, or JSON measured anew and not rendered, fails here."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_benchmark_table_in_the_readme_is_rendered_from_its_json():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import render
    finally:
        sys.path.pop(0)
    readme = (ROOT / "README.md").read_text()
    blocks = render.blocks()
    assert {"accuracy-bge-small", "accuracy-minilm", "speed", "throughput", "scale"} <= set(blocks)
    for name, block in blocks.items():
        found = re.search(rf"<!-- bench:{re.escape(name)} -->\n(.*?)<!-- /bench:{re.escape(name)} -->", readme, re.S)
        assert found is not None, f"README.md has no <!-- bench:{name} --> block"
        assert found[1] == block + "\n", f"README.md's {name} table is not what benchmarks/render.py writes"
