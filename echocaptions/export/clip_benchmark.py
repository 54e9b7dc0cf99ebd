"""Evaluation sets in CLIP_benchmark's webdataset layout: zero-shot classification and retrieval.

An evaluation set is one organ of an evaluation split: ``test_<organ>`` for
the test split, ``eval_<source>`` for a held-out source's split (or
``eval_<source>_<organ>`` when it holds several organs), ``<split>_<organ>``
for any other split named with ``--split``. Each set becomes

- ``zeroshot/<set>/``: ``classnames.txt``, ``zeroshot_classification_templates.txt``
  (from the primary prompt set), ``classes.json`` (label of each class index)
  and ``test/{0..N-1}.tar`` with ``{key}.png``, ``{key}.cls`` and ``{key}.json``;
  its classes are the labels present in the set (sorted, as train_min does),
  and a set with fewer than two is not written (a note says so);
- ``retrieval/<set>/``: ``dataset_type.txt`` (``retrieval``) and ``test/*.tar``
  with ``{key}.png`` and ``{key}.txt`` (the strategy's captions of the image,
  one per line).

``zeroshot/datasets.txt`` and ``retrieval/datasets.txt`` list the sets as
``wds/<set>`` for ``clip_benchmark eval --dataset FILE --dataset_root
'DIR/{dataset}'``; ``zeroshot/prompts/<set>.json`` holds each prompt set's
full ensemble for ``--custom_template_file``. The shards sit in a ``test``
folder whatever the split, so CLIP_benchmark's default ``--split test`` reads
every set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from echocaptions.export import prompts as prompt_sets
from echocaptions.export.samples import (
    ROW_COLUMNS,
    chosen_captions,
    dumps,
    image_of,
    label_name,
    one_line,
    organ_name,
)
from echocaptions.export.shards import ExportState, ShardSeries
from echocaptions.publish.build import EVAL_PREFIX, Build

WDS_SPLIT = "test"
SCAN_COLUMNS = ("organ", "label", "dataset", "captions")


def is_default_split(split: str) -> bool:
    return split == "test" or split.startswith(EVAL_PREFIX)


@dataclass
class EvalSet:
    """One organ of one split, with what the first pass found in it."""

    split: str
    organ: str
    name: str = ""
    labels: Counter[str] = field(default_factory=Counter)
    datasets: set[str] = field(default_factory=set)
    captioned: int = 0
    rows: int = 0

    @property
    def classes(self) -> list[str]:
        return sorted(self.labels)

    @property
    def dataset(self) -> str | None:
        """The set's one dataset, when all its rows come from one (picks a dataset's own prompts)."""
        return next(iter(self.datasets)) if len(self.datasets) == 1 else None


def set_name(split: str, organ: str, organs_in_split: int) -> str:
    if split.startswith(EVAL_PREFIX) and organs_in_split == 1:
        return split
    return f"{split}_{organ}"


def scan(build: Build, splits: Sequence[str], strategy: str) -> dict[tuple[str, str], EvalSet]:
    """First pass over the light columns: organs, labels, datasets and captioned rows per set."""
    sets: dict[tuple[str, str], EvalSet] = {}
    for split in splits:
        for row in build.rows(split, SCAN_COLUMNS, batch_rows=1024):
            organ = organ_name(row["organ"])
            s = sets.setdefault((split, organ), EvalSet(split, organ))
            s.rows += 1
            s.datasets.add(row["dataset"])
            label = label_name(row["label"])
            if label is not None:
                s.labels[label] += 1
            if chosen_captions(row, strategy)[1]:
                s.captioned += 1
    per_split = Counter(split for split, _ in sets)
    for (split, organ), s in sets.items():
        s.name = set_name(split, organ, per_split[split])
    return sets


def _class_files(s: EvalSet, sets: prompt_sets.PromptSets) -> dict[str, bytes]:
    primary = sets.sets[sets.primary]
    names = prompt_sets.classnames(primary, s.organ, s.classes, s.dataset)
    templates = prompt_sets.templates(primary, s.organ, s.dataset)
    classes = [{"index": i, "label": label, "classname": name, "rows": s.labels[label]}
               for i, (label, name) in enumerate(zip(s.classes, names, strict=True))]
    return {
        "classnames.txt": "".join(f"{n}\n" for n in names).encode("utf-8"),
        "zeroshot_classification_templates.txt": "".join(f"{t}\n" for t in templates).encode("utf-8"),
        "dataset_type.txt": b"classification\n",
        "classes.json": dumps({"set": s.name, "split": s.split, "organ": s.organ, "prompt_set": sets.primary,
                               "datasets": sorted(s.datasets), "classes": classes}) + b"\n",
    }


def _custom_templates(chosen: list[EvalSet], sets: prompt_sets.PromptSets) -> dict[str, bytes]:
    """Per prompt set: ``{set: {classname: [every template with every class name]}}``."""
    primary = sets.sets[sets.primary]
    out: dict[str, bytes] = {}
    for name, prompts in sets.sets.items():
        table = {}
        for s in chosen:
            keys = prompt_sets.classnames(primary, s.organ, s.classes, s.dataset)
            table[s.name] = {key: prompt_sets.ensemble(prompts, s.organ, label, s.dataset)
                             for key, label in zip(keys, s.classes, strict=True)}
        out[f"zeroshot/prompts/{name}.json"] = dumps(table) + b"\n"
    return out


def export(
    build: Build, state: ExportState, strategy: str, splits: Sequence[str], samples_per_shard: int,
    sets: prompt_sets.PromptSets, quiet: bool,
) -> dict[str, Any]:
    found = scan(build, splits, strategy)
    notes = [f"prompt file ignored: {why}" for why in sets.ignored]
    zeroshot = {k: s for k, s in found.items() if len(s.classes) >= 2}
    for s in found.values():
        if len(s.classes) < 2:
            notes.append(f"{s.name}: {len(s.classes)} class(es) ({', '.join(s.classes) or 'no labels'}), "
                         "no zero-shot classification set")
    retrieval = {k: s for k, s in found.items() if s.captioned}
    series: dict[tuple[str, str, str], ShardSeries] = {}
    for task, chosen in (("zeroshot", zeroshot), ("retrieval", retrieval)):
        for key, s in chosen.items():
            series[(task, *key)] = ShardSeries(
                state, lambda i, t=task, n=s.name: f"{t}/{n}/{WDS_SPLIT}/{i}.tar", samples_per_shard
            )
    skipped: Counter[str] = Counter()
    try:
        for split in splits:
            for row in tqdm(build.rows(split, ROW_COLUMNS), total=build.rows_per_split[split],
                            desc=f"clip_benchmark {split}", unit="row", disable=quiet):
                why = _add_row(row, split, strategy, zeroshot, retrieval, series)
                if why:
                    skipped[why] += 1
        shards = {key: ser.close() for key, ser in series.items()}
    except BaseException:
        for ser in series.values():
            ser.abort()
        raise
    summary: dict[str, Any] = {"format": "clip_benchmark", "strategy": strategy, "prompt_set": sets.primary,
                               "prompt_sets": sorted(sets.sets), "zeroshot": {}, "retrieval": {}, "notes": notes,
                               "skipped_rows": dict(sorted(skipped.items()))}
    for task, chosen in (("zeroshot", zeroshot), ("retrieval", retrieval)):
        names = []
        for key, s in sorted(chosen.items(), key=lambda kv: kv[1].name):
            done = shards[(task, *key)]
            if not done:
                notes.append(f"{task}/{s.name}: no image could be exported, set not written")
                continue
            folder = f"{task}/{s.name}"
            files = _class_files(s, sets) if task == "zeroshot" else {"dataset_type.txt": b"retrieval\n"}
            files[f"{WDS_SPLIT}/nshards.txt"] = f"{len(done)}\n".encode()
            for rel, data in files.items():
                state.write_file(f"{folder}/{rel}", data)
            names.append(s.name)
            summary[task][s.name] = {
                "split": s.split, "organ": s.organ, "datasets": sorted(s.datasets),
                "samples": series[(task, *key)].samples, "shards": len(done),
                **({"classes": s.classes} if task == "zeroshot" else {}),
            }
        state.write_file(f"{task}/datasets.txt", "".join(f"wds/{n}\n" for n in names).encode())
    for rel, data in _custom_templates([s for s in zeroshot.values() if s.name in summary["zeroshot"]], sets).items():
        state.write_file(rel, data)
    return summary


def _add_row(
    row: dict[str, Any], split: str, strategy: str, zeroshot: dict[tuple[str, str], EvalSet],
    retrieval: dict[tuple[str, str], EvalSet], series: dict[tuple[str, str, str], ShardSeries],
) -> str | None:
    """Add one row to its sets; the reason it went to none, if it belongs to none."""
    key = (split, organ_name(row["organ"]))
    label = label_name(row["label"])
    want_class = key in zeroshot and label in zeroshot[key].labels
    captions = chosen_captions(row, strategy)[1] if key in retrieval else []
    if not want_class and not captions:
        return "no_label_and_no_caption" if label is None else "no_caption_for_strategy"
    data, ext, why = image_of(row)
    if why:
        return why
    meta = dumps({"id": row["id"], "split": split, "dataset": row["dataset"], "organ": key[1], "label": label,
                  "source_path": row.get("source_path"), "sha256": row.get("sha256")})
    image = (f"{row['id']}.{ext}", data)
    if want_class:
        index = zeroshot[key].classes.index(label)
        series[("zeroshot", *key)].add([image, (f"{row['id']}.cls", str(index).encode()),
                                        (f"{row['id']}.json", meta)])
    if captions:
        text = "\n".join(one_line(c["text"]) for c in captions)
        series[("retrieval", *key)].add([image, (f"{row['id']}.txt", text.encode("utf-8")),
                                         (f"{row['id']}.json", meta)])
    return None
