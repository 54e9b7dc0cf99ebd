"""Caption strategies: which candidate of a row's ``captions`` a strategy trains on.

A build keeps every candidate (report, template, llm) with its provenance, so
one build answers "report or template or LLM?" without rebuilding. A strategy
is an ordered list of caption sources; a row takes the first source it has.
The ``*_multi`` strategies hand back every candidate of their source, so a
trainer can sample one of K captions per image at each step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# name -> (sources in order of preference, multi)
STRATEGIES: dict[str, tuple[tuple[str, ...], bool]] = {
    "report_template": (("report", "template"), False),
    "report_llm": (("report", "llm", "template"), False),
    "template_only": (("template",), False),
    "llm_only": (("llm", "template"), False),
    "report_only": (("report",), False),
    "template_multi": (("template",), True),
    "llm_multi": (("llm", "template"), True),
}

# The strategies a build writes as Hugging Face configs and tabulates.
PUBLISHED = ("report_template", "report_llm", "template_only", "llm_only")
# Strategies that need the LLM tier: without LLM captions they are the template strategies.
NEEDS_LLM = frozenset({"report_llm", "llm_only", "llm_multi"})


class UnknownStrategy(ValueError):
    pass


def sources_of(strategy: str) -> tuple[str, ...]:
    try:
        return STRATEGIES[strategy][0]
    except KeyError:
        raise UnknownStrategy(
            f"unknown caption strategy {strategy!r}; known: {', '.join(STRATEGIES)}"
        ) from None


def is_multi(strategy: str) -> bool:
    sources_of(strategy)
    return STRATEGIES[strategy][1]


def candidates(row: Mapping[str, Any], strategy: str) -> tuple[str | None, list[str]]:
    """``(source, texts)``: the first source of the strategy the row has, and its texts.

    Single-caption strategies return one text (the first candidate of that
    source); ``*_multi`` strategies return all of them. ``(None, [])`` when the
    row has none of the strategy's sources.
    """
    order = sources_of(strategy)
    multi = STRATEGIES[strategy][1]
    cands: Sequence[Mapping[str, Any]] = row.get("captions") or ()
    for source in order:
        texts = [c["text"] for c in cands if c.get("source") == source and c.get("text")]
        if texts:
            return source, texts if multi else texts[:1]
    return None, []


def caption(row: Mapping[str, Any], strategy: str) -> str | None:
    """The strategy's caption for one row (the first candidate), or None."""
    _, texts = candidates(row, strategy)
    return texts[0] if texts else None


def available(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many rows carry each caption source."""
    counts: dict[str, int] = {}
    for row in rows:
        for source in {c.get("source") for c in row.get("captions") or () if c.get("text")}:
            counts[source] = counts.get(source, 0) + 1
    return counts


def applicable(rows: Sequence[Mapping[str, Any]], strategies: Sequence[str] = PUBLISHED) -> list[str]:
    """The strategies that differ from the others on these rows (LLM ones only with LLM captions)."""
    has = available(rows)
    return [s for s in strategies if s not in NEEDS_LLM or has.get("llm")]
