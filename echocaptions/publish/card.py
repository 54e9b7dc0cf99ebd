"""The dataset card (``OUT/README.md``): a Hub YAML header plus prose on how it was built."""

from __future__ import annotations

from typing import Any

import yaml

from echocaptions.metrics.tables import SUMMARY_HEAD, summary_table
from echocaptions.schema import hf_features

SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)


def size_category(n: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if n < limit), "n>10M")


def card_header(recipe, stats: dict[str, Any], split_files: dict[str, list[str]]) -> dict[str, Any]:
    import datasets

    total = sum(stats["splits"].values())
    features = datasets.DatasetInfo(features=hf_features())._to_yaml_dict()["features"]
    return {
        "pretty_name": recipe.output.pretty_name or f"echocaptions {recipe.name}",
        "license": recipe.output.license,
        "language": ["en"],
        "task_categories": ["image-to-text", "zero-shot-image-classification"],
        "tags": ["medical", "ultrasound", "clip", "image-text"],
        "size_categories": [size_category(total)],
        "source_datasets": sorted(stats["datasets"]),
        "configs": [
            {
                "config_name": "default",
                "default": True,
                "data_files": [
                    {"split": split, "path": f"data/{split}-*.parquet"} for split in sorted(split_files)
                ],
            }
        ],
        "dataset_info": {
            "features": features,
            "splits": [
                {
                    "name": split,
                    "num_bytes": stats["split_bytes"][split],
                    "num_examples": stats["splits"][split],
                }
                for split in sorted(split_files)
            ],
            "download_size": sum(stats["split_download_bytes"].values()),
            "dataset_size": sum(stats["split_bytes"].values()),
        },
    }


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_card(
    recipe, stats: dict[str, Any], split_files: dict[str, list[str]], tables: dict[str, Any] | None = None
) -> str:
    header = yaml.safe_dump(card_header(recipe, stats, split_files), sort_keys=False, allow_unicode=True)
    sources = _table(
        [
            (name, s["layout"], s["role"], s["read"], s["kept"], s["rejected"], s.get("license") or "see source")
            for name, s in sorted(stats["sources"].items())
        ],
        ("source", "layout", "role", "items read", "rows", "rejected", "licence"),
    )
    splits = _table(sorted(stats["splits"].items()), ("split", "rows"))
    caption_sources = _table(sorted(stats["caption_sources"].items()), ("caption source", "rows"))
    organs = _table(sorted(stats["organs"].items()), ("organ", "rows"))
    leakage = _table(
        [(k.replace("_", " "), v) for k, v in sorted(stats["leakage"].items()) if k != "max_hamming"],
        ("spanning two splits", "count"),
    )
    policy = " ▸ ".join(recipe.captions.policy)
    diversity = _table(summary_table(tables or {}), SUMMARY_HEAD) if tables else "not computed"
    phi = ", ".join(f"{k} {v}" for k, v in sorted(stats["reports"]["phi_removed"].items())) or "none"
    return f"""---
{header}---

# {recipe.output.pretty_name or f"echocaptions {recipe.name}"}

Ultrasound image–caption pairs for CLIP-style training, built by
echocaptions from recipe
`{recipe.name}` (seed {recipe.seed}). {recipe.description.strip()}

## How it was built

1. Each source was read in the layout it is published in; every image became a
   row or a line in `rejects.jsonl` with its reason ({stats['rejected']} rejected).
2. Images were decoded and normalised to PNG (8-bit grayscale unless the source
   is colour, long side at most {recipe.image.max_side or 'unchanged'}); `sha256` hashes the pixels.
3. Near-duplicates across all sources (64-bit perceptual hashes within
   {stats['leakage']['max_hamming']} bits) were removed, keeping one image per cluster
   ({stats['near_duplicates']['clusters']} clusters, {stats['near_duplicates']['label_conflicts']} rejected for conflicting labels). Rows
   sharing a patient, a study or a video were kept in one split, stratified by
   organ and label; held-out evaluation sources form their own `eval_*` splits.
4. Captions follow the policy {policy}: every candidate is kept in `captions`
   with its provenance, the chosen one is `caption`, and `caption_meta` says why
   earlier tiers were skipped.

## Splits

{splits}

## Caption strategies: lexical diversity and findings fidelity

Each strategy over the same rows (`diversity.json` has every metric and more
groupings; diversity is not quality, so findings precision and recall, read
with a negation-aware matcher against the structured labels, stand beside it):

{diversity}

## Leakage check

{leakage}

## Sources

{sources}

## Organs

{organs}

## Caption sources

{caption_sources}

## Use

```python
from datasets import load_dataset
ds = load_dataset("path/or/repo-id")
ds["train"][0]["image"], ds["train"][0]["caption"]
```

Template captions are generated from structured labels and findings; report
captions come from expert reports after de-identification (names, dates, ids,
phone numbers, addresses, ages over 89 and hospital names replaced by typed
placeholders such as `[NAME]`; removals this build: {phi}). The `report` column
{'holds the de-identified reports' if recipe.reports.publish else 'is empty in this build (reports.publish is false)'}.
Each source keeps its own licence; check it before redistribution.
"""
