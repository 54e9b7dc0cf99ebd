"""The report stage of a build: de-identify, caption and read findings from reports.

Reports are processed per batch of rows; rows that share a report (all images
of one study) share one result. Every text that leaves this stage is
de-identified first: the published report column, the report caption and the
findings read from the text.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from echocaptions.captions.reports.caption import (
    DEFAULT_SECTIONS,
    ReportCaptioner,
    ReportConfig,
    ReportResult,
)
from echocaptions.captions.reports.deid import Deidentifier
from echocaptions.captions.reports.findings_text import FindingsMatcher
from echocaptions.schema import FINDINGS_BY_ORGAN

if TYPE_CHECKING:
    from echocaptions.captions.llm.translate import ReportTranslator

RECENT_REPORTS = 4096


@dataclass
class ReportOutcome:
    """What one report gives its rows."""

    text: str | None = None
    result: ReportResult | None = None
    findings: dict[str, str] = field(default_factory=dict)


class ReportStage:
    def __init__(
        self,
        tokenizer: str = "clip",
        budget: int | None = None,
        languages: tuple[str, ...] = ("en",),
        sections: dict[str, str] | None = None,
        spacy_model: str | None = None,
        ner: str = "auto",
        fill_findings: bool = True,
        translator: ReportTranslator | None = None,
    ) -> None:
        self.deid = Deidentifier(use_ner={"auto": None, "on": True, "off": False}[ner])
        self.captioner = ReportCaptioner(
            ReportConfig(
                sections={**DEFAULT_SECTIONS, **(sections or {})},
                tokenizer=tokenizer,
                budget=budget,
                languages=tuple(languages),
                spacy_model=spacy_model,
            )
        )
        self.matcher = FindingsMatcher() if fill_findings else None
        self.phi_removed: Counter = Counter()
        self.languages: Counter = Counter()
        self.translator = translator
        self.translated: Counter = Counter()
        self.reports_seen = 0
        self._recent: OrderedDict[str, ReportOutcome] = OrderedDict()

    def reset(self) -> None:
        """Forget the counts and the recent reports, as before the first batch."""
        self.phi_removed.clear()
        self.languages.clear()
        self.translated.clear()
        self.reports_seen = 0
        self._recent.clear()
        if self.translator is not None:
            self.translator.requests_sent = 0

    def process(self, reports: list[tuple[str | None, str]]) -> list[ReportOutcome]:
        """One outcome per ``(report, organ)``; a report shared by several rows is processed once."""
        keys = [_key(text, organ) if text and text.strip() else None for text, organ in reports]
        todo: dict[str, tuple[str, str]] = {}
        for key, (text, organ) in zip(keys, reports, strict=True):
            if key is not None and key not in todo and key not in self._recent:
                todo[key] = (text, organ)
        scrubbed: dict[str, str] = {}
        for key, clean in zip(todo, self.deid.scrub_many([text for text, _ in todo.values()]), strict=True):
            scrubbed[key] = clean.text
            self.phi_removed.update(clean.counts)
        results = self.captioner.caption_many([(scrubbed[k], organ) for k, (_, organ) in todo.items()])
        english = dict(scrubbed)
        if self.translator is not None:
            results = self._translate(list(todo.items()), results, scrubbed, english)
        for (key, (_, organ)), result in zip(todo.items(), results, strict=True):
            found = self.matcher.findings(english[key], organ) if self.matcher else {}
            allowed = FINDINGS_BY_ORGAN[organ]
            self._recent[key] = ReportOutcome(
                text=scrubbed[key], result=result, findings={k: v for k, v in found.items() if k in allowed}
            )
            self.languages[result.language] += 1
        self.reports_seen += len(todo)
        outcomes = [self._recent[k] if k is not None else ReportOutcome() for k in keys]
        while len(self._recent) > RECENT_REPORTS:
            self._recent.popitem(last=False)
        return outcomes

    def _translate(
        self,
        todo: list[tuple[str, tuple[str, str]]],
        results: list[ReportResult],
        scrubbed: dict[str, str],
        english: dict[str, str],
    ) -> list[ReportResult]:
        """Reports left out for their language, captioned again from an English translation.

        ``english`` gets the (de-identified) translation of each translated
        report, for the findings matcher. A failed translation keeps the
        language reason and adds why the translation did not help.
        """
        assert self.translator is not None
        wanted = [i for i, r in enumerate(results) if r.caption is None and (r.reason or "").startswith("language ")]
        if not wanted:
            return results
        answers = self.translator.translate([(scrubbed[todo[i][0]], results[i].language) for i in wanted])
        results = list(results)
        done: list[tuple[int, str]] = []
        for i, answer in zip(wanted, answers, strict=True):
            original = results[i]
            if answer.text is None:
                results[i] = _with_reason(original, f"{original.reason}; {answer.reason}")
                self.translated["failed"] += 1
                continue
            clean = self.deid.scrub_many([answer.text])[0]
            self.phi_removed.update(clean.counts)
            english[todo[i][0]] = clean.text
            done.append((i, clean.text))
        again = self.captioner.caption_many([(text, todo[i][1][1]) for i, text in done])
        for (i, _), result in zip(done, again, strict=True):
            language = results[i].language
            if result.caption is None:
                results[i] = _with_reason(result, f"translated from {language!r}: {result.reason}", language)
                self.translated["no_caption"] += 1
                continue
            note = f"translated from {language!r} by {self.translator.provenance}"
            caption = result.caption
            provenance = replace(
                caption.provenance, note=f"{note}; {caption.provenance.note}" if caption.provenance.note else note
            )
            results[i] = replace(result, caption=replace(caption, provenance=provenance), language=language)
            self.translated[language] += 1
        return results


def _with_reason(result: ReportResult, reason: str, language: str | None = None) -> ReportResult:
    return replace(result, caption=None, reason=reason, language=language or result.language)


def _key(text: str, organ: str) -> str:
    return hashlib.sha256(f"{organ}\x1f{text}".encode("utf-8", "surrogatepass")).hexdigest()
