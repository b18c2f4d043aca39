"""The bench's results as a text table: one row per run, the mean over seeds, calls and tokens."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from .bench import RunResult


def format_table(results: Sequence[RunResult]) -> str:
    methods = list(results[0].methods)
    width = {m: max(8, len(m)) for m in methods}
    selected = any(r.selection != "random" for r in results)  # a column naming the selector, if not all random

    def sel(name: str) -> str:
        return f"{name:<9} " if selected else ""

    head = f"{'dataset':<18} {'budget':>6} {'seed':>4} {sel('select')}{'n_pref':>6} {'n_eval':>6}  " + \
        "  ".join(f"{m:>{width[m]}}" for m in methods)
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.dataset:<18} {r.budget:>6} {r.seed:>4} {sel(r.selection)}{r.n_preference:>6} "
                     f"{r.n_eval:>6}  " + "  ".join(f"{r.methods[m].accuracy:>{width[m]}.3f}" for m in methods))
    groups: dict[tuple[str, str, str], list] = {}
    for r in results:
        groups.setdefault((r.dataset, r.budget, r.selection), []).append(r)
    if any(len(g) > 1 for g in groups.values()):
        lines += ["", "mean over seeds", "-" * len(head)]
        for (dataset, budget, selection), runs in groups.items():
            lines.append(f"{dataset:<18} {budget:>6} {len(runs):>4} {sel(selection)}{'':>6} {'':>6}  " + "  ".join(
                f"{statistics.fmean(r.methods[m].accuracy for r in runs):>{width[m]}.3f}" for m in methods))
    last = results[-1]
    lines += ["", "annotator calls per evaluation item (last run): " + ", ".join(
        f"{m} {last.methods[m].annotator_calls / last.n_eval:.2f}" for m in methods)]
    if any(m.annotator_tokens is not None for m in last.methods.values()):
        lines.append("tokens per evaluation item (last run): " + ", ".join(
            f"{m} {last.methods[m].annotator_tokens / last.n_eval:.0f}" for m in methods
            if last.methods[m].annotator_tokens is not None))
    return "\n".join(lines)
