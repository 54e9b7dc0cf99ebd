"""Export a finished build for the field's own tools: open_clip's trainer and CLIP_benchmark.

``export`` checks everything first (a finished build, a strategy it has
captions for, splits it has, a destination that is new, empty or this same
export half done, prompt sets for CLIP_benchmark), then streams the build's
Parquet shards in batches into

- ``webdataset``: tar shards for ``open_clip_train.main --dataset-type webdataset``
  (:mod:`echocaptions.export.webdataset`);
- ``csv``: image files and a CSV per split for ``--dataset-type csv``
  (:mod:`echocaptions.export.csv_files`);
- ``clip_benchmark``: zero-shot classification and retrieval sets in
  CLIP_benchmark's webdataset layout (:mod:`echocaptions.export.clip_benchmark`).

Shards are deterministic and recorded in ``manifest.json`` with their size
and SHA-256; rerunning an interrupted export writes only what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echocaptions.export import clip_benchmark, csv_files, webdataset
from echocaptions.export import prompts as prompt_sets
from echocaptions.export.build import ExportError, open_build, pick_splits
from echocaptions.export.build import check_strategy as _check_strategy
from echocaptions.export.shards import MANIFEST, ExportState

FORMATS = ("webdataset", "csv", "clip_benchmark")
SAMPLES_PER_SHARD = 1000

__all__ = ["FORMATS", "MANIFEST", "SAMPLES_PER_SHARD", "ExportError", "ExportResult", "default_dest", "export"]


@dataclass
class ExportResult:
    dest: Path
    summary: dict[str, Any]
    resumed_files: int
    already_complete: bool


def default_dest(build_dir: Path, to: str, strategy: str) -> Path:
    """``OUT-{format}-{strategy}`` beside the build folder."""
    build_dir = Path(build_dir).absolute()
    return build_dir.with_name(f"{build_dir.name}-{to}-{strategy}")


def export(
    build_dir: Path,
    to: str,
    strategy: str | None,
    splits: Sequence[str] | None = None,
    dest: Path | None = None,
    samples_per_shard: int = SAMPLES_PER_SHARD,
    prompts: Path | None = None,
    quiet: bool = True,
) -> ExportResult:
    """Export the build at ``build_dir``; see the module docstring. Raises ExportError on bad input."""
    if to not in FORMATS:
        raise ExportError(f"--to {to}: unknown format; choose one of {', '.join(FORMATS)}")
    if samples_per_shard < 1:
        raise ExportError(f"--samples-per-shard {samples_per_shard}: must be 1 or more")
    build = open_build(Path(build_dir))
    strategy = _check_strategy(build, strategy)
    settings: dict[str, Any] = {"format": to, "strategy": strategy}
    sets = None
    if to == "clip_benchmark":
        chosen = pick_splits(build, splits, clip_benchmark.is_default_split, "test and eval_<source>")
        sets = prompt_sets.load(prompts)
        settings["prompts"] = sets.digest
    else:
        defaults = webdataset.DEFAULT_SPLITS if to == "webdataset" else csv_files.DEFAULT_SPLITS
        chosen = pick_splits(build, splits, lambda s: s in defaults, ", ".join(defaults))
    settings["splits"] = chosen
    if to != "csv":
        settings["samples_per_shard"] = samples_per_shard
    state = ExportState.prepare(Path(dest) if dest else default_dest(build.path, to, strategy), build, settings)
    resumed = state.resumed
    if state.complete:
        return ExportResult(state.dest, state.summary, resumed, True)
    if to == "webdataset":
        summary = webdataset.export(build, state, strategy, chosen, samples_per_shard, quiet)
    elif to == "csv":
        summary = csv_files.export(build, state, strategy, chosen, quiet)
    else:
        assert sets is not None
        summary = clip_benchmark.export(build, state, strategy, chosen, samples_per_shard, sets, quiet)
    summary["build"] = str(build.path.absolute())
    state.finish(summary)
    return ExportResult(state.dest, summary, resumed, False)
