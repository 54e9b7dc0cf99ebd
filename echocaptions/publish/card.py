"""The dataset card (``OUT/README.md``): a Hub YAML header plus prose on how it was built."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from echocaptions.metrics.tables import SUMMARY_HEAD, summary_table
from echocaptions.publish import strategy_configs
from echocaptions.schema import hf_features, schema_markdown

SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)


def size_category(n: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if n < limit), "n>10M")


def _features_yaml(features) -> list[dict[str, Any]]:
    import datasets

    return datasets.DatasetInfo(features=features)._to_yaml_dict()["features"]


def card_header(
    recipe,
    stats: dict[str, Any],
    split_files: dict[str, list[str]],
    strategy_names: Sequence[str] = (),
) -> dict[str, Any]:
    total = sum(stats["splits"].values())
    splits = [{"name": split, "num_examples": stats["splits"][split]} for split in sorted(split_files)]
    info: dict[str, Any] = {
        "config_name": "default",
        "features": _features_yaml(hf_features()),
        "splits": [{**s, "num_bytes": stats["split_bytes"][s["name"]]} for s in splits],
        "download_size": sum(stats["split_download_bytes"].values()),
        "dataset_size": sum(stats["split_bytes"].values()),
    }
    strategy_features = _features_yaml(strategy_configs.features(recipe.output.strategy_images))
    per_strategy = stats.get("strategies") or {}
    infos = [info] + [
        {
            "config_name": name,
            "features": strategy_features,
            "splits": [
                {**s, "num_bytes": per_strategy.get(name, {}).get("split_bytes", {}).get(s["name"], 0)}
                for s in splits
            ],
        }
        for name in strategy_names
    ]
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
            },
            *strategy_configs.card_configs(split_files, strategy_names),
        ],
        "dataset_info": infos if strategy_names else {k: v for k, v in info.items() if k != "config_name"},
    }


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _origin(source: str, recipe) -> str:
    """How captions of a source were made; LLM captions are marked machine-generated."""
    if source == "llm":
        model = recipe.llm.model if recipe.llm is not None else "a language model"
        return f"**machine-generated** by `{model}` from the labels and findings (not reviewed by a clinician)"
    if source == "report":
        return "written by clinicians (expert report, de-identified, shortened to fit the text encoder)"
    if source == "template":
        return "rule-based: a Jinja template filled from the labels and findings"
    return "none available"


def _strategies_section(recipe, stats: dict[str, Any], strategy_names: Sequence[str]) -> str:
    if not strategy_names:
        return "Not written for this build (`output.strategy_configs: false`)."
    counts = {name: s["caption_sources"] for name, s in (stats.get("strategies") or {}).items()}
    sources = sorted({src for name in strategy_names for src in counts.get(name, {})})
    table = _table(
        [(f"`{name}`", *(counts.get(name, {}).get(src, 0) for src in sources)) for name in strategy_names],
        ("config", *(f"{src} captions" for src in sources)),
    )
    images = "with images" if recipe.output.strategy_images else "ids, labels and the caption; join on `id`"
    return f"""Each caption strategy is its own config under `strategies/` ({images}),
the same rows in the same splits with `caption` picked by the strategy:

{table}

```python
load_dataset("path/or/repo-id", "template_only")
```"""


def _notices_section(stats: dict[str, Any]) -> str:
    notices = stats.get("notices") or {}
    if not notices:
        return ""
    lines = [f"- `{name}`: {message}" for name, messages in sorted(notices.items()) for message in messages]
    return "\nNotes from reading the sources:\n\n" + "\n".join(lines) + "\n"


def _citations_section(stats: dict[str, Any]) -> str:
    """Per source: who published it (cite this), its licence, and what its ids can and cannot group."""
    from echocaptions.sources import registry

    layouts = registry()
    parts = []
    for name, s in sorted(stats["sources"].items()):
        cls = layouts.get(s["layout"])
        lines = [f"- **{name}** (layout `{s['layout']}`)"]
        if cls is not None and cls.published:
            lines.append(f"  - cite: {cls.published}")
        lines.append(f"  - licence: {s.get('license') or 'see the publisher'}")
        if cls is not None and cls.grouping_note:
            lines.append(f"  - patients: {cls.grouping_note}")
        parts.append("\n".join(lines))
    return "\n".join(parts) + """

`patient_id` and `study_id` are `<dataset>:<the dataset's own id>`, unique
across this dataset: grouping by them (e.g. `GroupKFold`) never merges two
datasets' patients."""


def render_card(
    recipe,
    stats: dict[str, Any],
    split_files: dict[str, list[str]],
    tables: dict[str, Any] | None = None,
    strategy_names: Sequence[str] = (),
) -> str:
    header_dict = card_header(recipe, stats, split_files, strategy_names)
    if stats["caption_sources"].get("llm"):
        header_dict["tags"] = [*header_dict["tags"], "synthetic"]
    header = yaml.safe_dump(header_dict, sort_keys=False, allow_unicode=True)
    sources = _table(
        [
            (name, s["layout"], s["role"], s["read"], s["kept"], s.get("unlabelled", 0), s["rejected"],
             s.get("license") or "see source")
            for name, s in sorted(stats["sources"].items())
        ],
        ("source", "layout", "role", "items read", "rows", "rows without a label", "rejected", "licence"),
    )
    splits = _table(sorted(stats["splits"].items()), ("split", "rows"))
    caption_sources = _table(
        [(src, n, _origin(src, recipe)) for src, n in sorted(stats["caption_sources"].items())],
        ("caption source", "rows", "made by"),
    )
    organs = _table(sorted(stats["organs"].items()), ("organ", "rows"))
    leakage = _table(
        [(k.replace("_", " "), v) for k, v in sorted(stats["leakage"].items()) if k != "max_hamming"],
        ("spanning two splits", "count"),
    )
    policy = " ▸ ".join(recipe.captions.policy)
    diversity = _table(summary_table(tables or {}), SUMMARY_HEAD) if tables else "not computed"
    phi = ", ".join(f"{k} {v}" for k, v in sorted(stats["reports"]["phi_removed"].items())) or "none"
    near = stats["near_duplicates"]
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
   ({near['clusters']} clusters, {near['label_conflicts']} rejected for conflicting labels). Rows
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

## One config per strategy

{_strategies_section(recipe, stats, strategy_names)}

## Leakage check

{leakage}

## Sources

{sources}

Rows without a label keep their image and findings; their captions come from
the findings or the organ alone.
{_notices_section(stats)}
## Datasets: citation, licence and limits

{_citations_section(stats)}

## Organs

{organs}

## Caption sources

{caption_sources}

## Columns

Every row has these columns (the `label` and `findings` vocabularies are listed
under "Schema" in the echocaptions README):

{schema_markdown()}
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
