"""Diversity and findings fidelity of a build, grouped the ways people compare strategies.

Groups: the chosen caption by caption source, organ and dataset; and each
caption strategy over the same rows: ``template_only`` (every row's template
candidate), ``report_template`` (the report caption where there is one, else
the template), and with an LLM tier ``llm_only`` and ``report_llm``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from echocaptions.captions import strategies
from echocaptions.metrics.diversity import grouped

GROUPINGS: tuple[tuple[str, ...], ...] = (("caption_source",), ("organ",), ("dataset",), ("caption_source", "organ"))
SUMMARY_KEYS = ("ttr", "mtld", "self_bleu_4", "distinct_2_corpus", "medical_term_coverage")


def strategy_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (strategy, record) with that strategy's caption."""
    out: list[dict[str, Any]] = []
    names = strategies.applicable(rows)
    for r in rows:
        for name in names:
            out.append({**r, "strategy": name, "caption": strategies.caption(r, name) or ""})
    return out


def diversity_tables(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{grouping: {group: report}}`` for the published rows (dicts with caption columns).

    Rows are taken in id order, so order-dependent metrics (MTLD, MATTR) do not
    depend on how the rows were read.
    """
    rows = sorted(rows, key=lambda r: r["id"])
    tables: dict[str, Any] = {"/".join(by): grouped(rows, by) for by in GROUPINGS}
    tables["strategy"] = grouped(strategy_rows(rows), ["strategy"])
    return tables


def summary_table(tables: dict[str, Any], grouping: str = "strategy") -> list[tuple[str, ...]]:
    """Rows for a short Markdown table: group, n, main diversity values, fidelity precision and recall."""
    out = []
    for group, report in sorted(tables.get(grouping, {}).items()):
        values = report["values"]
        fidelity = report.get("fidelity") or {}
        cells = [group, str(report["n_captions"])]
        cells += [_fmt(values.get(k)) for k in SUMMARY_KEYS]
        cells += [_fmt(fidelity.get("precision")), _fmt(fidelity.get("recall"))]
        out.append(tuple(cells))
    return out


SUMMARY_HEAD = ("group", "captions", *SUMMARY_KEYS, "findings precision", "findings recall")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
