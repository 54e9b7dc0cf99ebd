"""Caption policy: every candidate a row can have, and the chosen one.

The recipe's ordered list (e.g. ``[report, template]``) picks ``caption``;
all candidates stay in ``captions`` with provenance, and ``caption_meta``
records the policy, the choice and why earlier tiers were skipped.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from echocaptions.captions.reports import report_caption
from echocaptions.schema import Caption, SourceItem


class CaptionPolicy:
    def __init__(
        self,
        policy: list[str],
        seed: int = 0,
        keep_reports: bool = False,
        template_dir: Path | None = None,
    ) -> None:
        from echocaptions.captions.templates import TemplateCaptioner

        self.policy = list(policy)
        self.keep_reports = keep_reports
        self.templates = TemplateCaptioner(template_dir, seed=seed)

    def candidates(self, record_id: str, item: SourceItem) -> tuple[list[Caption], dict[str, str]]:
        """All candidates this row has, and why each missing tier is missing."""
        found: list[Caption] = []
        missing: dict[str, str] = {}
        if "report" in self.policy:
            if not item.report:
                missing["report"] = "no report for this image"
            elif not self.keep_reports:
                missing["report"] = "reports withheld (keep_reports is false)"
            else:
                cap = report_caption(item.report)
                if cap is None:
                    missing["report"] = "report has no usable sentence"
                else:
                    found.append(cap)
        found.append(
            self.templates.caption(
                record_id=record_id,
                organ=item.organ,
                label=item.label,
                findings=item.findings,
                view=item.view,
                dataset=item.dataset,
            )
        )
        return found, missing

    def choose(self, record_id: str, item: SourceItem) -> tuple[str, str, list[Caption], dict[str, Any]]:
        """``(caption, caption_source, captions, caption_meta)`` for one row."""
        found, missing = self.candidates(record_id, item)
        by_source = {c.source: c for c in found}
        chosen = next((by_source[s] for s in self.policy if s in by_source), None)
        if chosen is None:
            chosen = by_source["template"]
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
