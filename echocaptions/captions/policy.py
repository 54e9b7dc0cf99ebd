"""Caption policy: every candidate a row can have, and the chosen one.

The recipe's ordered list (e.g. ``[report, template]``) picks ``caption``;
all candidates stay in ``captions`` with provenance, and ``caption_meta``
records the policy, the choice and why earlier tiers were skipped. Report
captions arrive already made (and de-identified) by the report stage.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from echocaptions.captions.llm.client import LLMResult
from echocaptions.captions.reports.caption import ReportResult
from echocaptions.captions.templates import TemplateCaptioner
from echocaptions.schema import Caption, SourceItem


class CaptionPolicy:
    def __init__(
        self, policy: list[str], seed: int = 0, template_dir: Path | None = None, template_variants: int = 1
    ) -> None:
        self.policy = list(policy)
        self.templates = TemplateCaptioner(template_dir, seed=seed)
        self.template_variants = template_variants
        # Why a row has no LLM answer when the tier is in the policy but gave none.
        self.llm_missing = "no LLM answer for this image"

    def candidates(
        self,
        record_id: str,
        item: SourceItem,
        findings: dict[str, str | None],
        report: ReportResult | None,
        llm: LLMResult | None = None,
    ) -> tuple[list[Caption], dict[str, str]]:
        """All candidates this row has, and why each missing tier is missing."""
        found: list[Caption] = []
        missing: dict[str, str] = {}
        if "report" in self.policy:
            if report is None:
                missing["report"] = "no report for this image"
            elif report.caption is None:
                missing["report"] = report.reason or "report has no usable sentence"
            else:
                found.append(report.caption)
        if "llm" in self.policy:
            if llm is None:
                missing["llm"] = self.llm_missing
            elif not llm.captions:
                missing["llm"] = "no LLM caption passed validation: " + "; ".join(llm.failures[:3])
            else:
                found.extend(llm.captions)
        found.extend(
            self.templates.captions(
                record_id=record_id,
                organ=item.organ,
                label=item.label,
                findings=findings,
                view=item.view,
                dataset=item.dataset,
                count=self.template_variants,
            )
        )
        return found, missing

    def choose(
        self,
        record_id: str,
        item: SourceItem,
        findings: dict[str, str | None] | None = None,
        report: ReportResult | None = None,
        llm: LLMResult | None = None,
    ) -> tuple[str, str, list[Caption], dict[str, Any]]:
        """``(caption, caption_source, captions, caption_meta)`` for one row."""
        found, missing = self.candidates(
            record_id, item, item.findings if findings is None else findings, report, llm
        )
        by_source: dict[str, Caption] = {}
        for c in found:
            by_source.setdefault(c.source, c)
        chosen = next((by_source[s] for s in self.policy if s in by_source), by_source["template"])
        order = self.policy if chosen.source in self.policy else [*self.policy, chosen.source]
        earlier = order[: order.index(chosen.source)]
        skipped = [f"{s}: {missing[s]}" for s in earlier if s in missing]
        meta: dict[str, Any] = {
            "policy": ">".join(self.policy),
            "chosen": chosen.source,
            "fallback": "; ".join(skipped) or None,
            **asdict(chosen.provenance),
        }
        return chosen.text, chosen.source, found, meta
