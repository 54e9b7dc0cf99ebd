"""Report tier: a caption from an expert report's impression and findings.

Sections are found by their headings; the caption is built from whole
sentences of IMPRESSION, then FINDINGS (then the whole text when it has no
headings), up to a word budget, never cutting a sentence. Reports reach this
tier only when the recipe allows them (``keep_reports``).
"""

from __future__ import annotations

import re

from echocaptions.schema import Caption, Provenance

SECTION_RE = re.compile(
    r"^\s*(?P<name>[A-Z][A-Z /&]{2,40})\s*:\s*", re.MULTILINE
)
PREFERRED = ("IMPRESSION", "CONCLUSION", "FINDINGS")
SKIPPED = ("CLINICAL HISTORY", "HISTORY", "INDICATION", "TECHNIQUE", "COMPARISON")
SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
DEFAULT_WORD_BUDGET = 45


def sections(text: str) -> dict[str, str]:
    """Heading -> body; text before the first heading is under ``""``."""
    found: dict[str, str] = {}
    matches = list(SECTION_RE.finditer(text))
    if not matches:
        return {"": text.strip()}
    if matches[0].start() > 0 and text[: matches[0].start()].strip():
        found[""] = text[: matches[0].start()].strip()
    for m, nxt in zip(matches, [*matches[1:], None], strict=True):
        body = text[m.end() : nxt.start() if nxt else len(text)].strip()
        if body:
            found[m.group("name").strip().upper()] = body
    return found


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_RE.split(" ".join(text.split())) if s.strip()]


def report_caption(text: str | None, word_budget: int = DEFAULT_WORD_BUDGET) -> Caption | None:
    if not text or not text.strip():
        return None
    parts = sections(text)
    ordered = [parts[name] for name in PREFERRED if name in parts]
    if not ordered:
        ordered = [body for name, body in parts.items() if name not in SKIPPED]
    kept: list[str] = []
    words = 0
    for body in ordered:
        for sentence in sentences(body):
            n = len(sentence.split())
            if words + n > word_budget:
                if not kept:
                    continue
                break
            kept.append(sentence)
            words += n
    if not kept:
        return None
    return Caption(
        source="report",
        text=" ".join(kept),
        provenance=Provenance(note=f"sections={'+'.join(n for n in PREFERRED if n in parts) or 'body'}; sentences={len(kept)}"),
    )
