"""Reading a build for training: rows in a fixed order, captions per strategy, images decoded once.

Every strategy of a comparison trains on the same rows in the same order, so
rows are read once, ordered by split and id (independent of shard layout), and
images are decoded once into a uint8 array at the model's input size. The
array lives in a ``.npy`` file that later runs (and the other processes of a
distributed run) memory-map instead of decoding again.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from echocaptions.captions import strategies
from echocaptions.publish.build import EVAL_PREFIX, Build, BuildFolderError, open_build

SPLIT_ORDER = ("train", "validation", "test")
META_COLUMNS = ("id", "organ", "label", "dataset", "captions", "findings", "sha256")
POLICY_COLUMN = "caption"  # the caption the build's policy chose for the row


class BuildError(BuildFolderError):
    """The build cannot serve what was asked; the message names what is missing and what exists."""


@dataclass
class Rows:
    """The small columns of every row of a build, in training order (split, then id)."""

    path: Path
    ids: list[str]
    split: list[str]
    organ: list[str]
    label: list[str | None]
    dataset: list[str]
    captions: list[list[dict[str, Any]]]
    findings: list[dict[str, str]]
    sha256: list[str]
    splits: dict[str, Any] = field(repr=False)  # split name -> datasets.Dataset (images)
    position: list[int] = field(repr=False)  # row -> index inside its split's Dataset
    policy: list[str | None] | None = None  # the build's own caption (its caption policy), when it has one
    build: Build | None = field(default=None, repr=False)  # the opened build folder (None for rows made in tests)

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, split: str) -> np.ndarray:
        """Row indices of one split, in training order."""
        return np.array([i for i, s in enumerate(self.split) if s == split], dtype=np.int64)

    @property
    def split_names(self) -> list[str]:
        return list(dict.fromkeys(self.split))

    def fingerprint(self) -> str:
        """Content hash of the rows (ids and pixel hashes): names an image cache."""
        digest = hashlib.sha256()
        for row_id, sha in zip(self.ids, self.sha256, strict=True):
            digest.update(f"{row_id}\x1f{sha}\x1e".encode())
        return digest.hexdigest()[:16]


def _split_order(names: Sequence[str]) -> list[str]:
    known = [s for s in SPLIT_ORDER if s in names]
    return known + sorted(s for s in names if s not in SPLIT_ORDER)


def load_rows(path: str | Path) -> Rows:
    """Open a build (:func:`open_build`) and read its small columns with ``datasets`` (no image is decoded here)."""
    import datasets

    path = Path(path)
    build = open_build(path, error=BuildError)
    datasets.disable_progress_bars()
    ds = datasets.load_dataset("parquet", data_files=build.data_files())
    missing = [c for c in (*META_COLUMNS, "image") if c not in ds[next(iter(ds))].column_names]
    if missing:
        raise BuildError(f"build {path} lacks columns {missing}; it has {ds[next(iter(ds))].column_names}")
    if "train" not in ds or len(ds["train"]) == 0:
        raise BuildError(f"build {path} has no train rows; splits: { {k: len(v) for k, v in ds.items()} }")
    has_policy = POLICY_COLUMN in ds[next(iter(ds))].column_names
    columns = [*META_COLUMNS, *([POLICY_COLUMN] if has_policy else [])]
    cols: dict[str, list[Any]] = {k: [] for k in (*columns, "split", "position")}
    for split in _split_order(list(ds)):
        part = ds[split]
        meta = part.select_columns(columns).to_dict()
        organ_names = part.features["organ"].names
        label_names = part.features["label"].names
        order = sorted(range(len(part)), key=lambda i: meta["id"][i])
        for i in order:
            cols["id"].append(meta["id"][i])
            cols["organ"].append(organ_names[meta["organ"][i]])
            label = meta["label"][i]
            cols["label"].append(None if label is None or label < 0 else label_names[label])
            cols["dataset"].append(meta["dataset"][i])
            cols["captions"].append(list(meta["captions"][i] or []))
            cols["findings"].append({k: v for k, v in (meta["findings"][i] or {}).items() if v})
            cols["sha256"].append(meta["sha256"][i])
            if has_policy:
                cols[POLICY_COLUMN].append(meta[POLICY_COLUMN][i] or None)
            cols["split"].append(split)
            cols["position"].append(i)
    return Rows(
        path=path, ids=cols["id"], split=cols["split"], organ=cols["organ"], label=cols["label"],
        dataset=cols["dataset"], captions=cols["captions"], findings=cols["findings"],
        sha256=cols["sha256"], splits=dict(ds), position=cols["position"],
        policy=cols[POLICY_COLUMN] if has_policy else None, build=build,
    )


# ---------------------------------------------------------------- captions per strategy


def _row(rows: Rows, i: int) -> dict[str, Any]:
    return {"captions": rows.captions[i]}


def default_strategies(rows: Rows) -> list[str]:
    """The strategies that are distinct on this build: the published ones it supports, then
    the several-captions ones whose source it has."""
    train = [_row(rows, i) for i in rows.where("train")]
    has = strategies.available(train)
    names = list(strategies.applicable(train))
    names += [s for s in ("template_multi", "llm_multi") if has.get(strategies.sources_of(s)[0])]
    return [s for s in names if _rows_without(rows, s, rows.where("train")) == []]


def _rows_without(rows: Rows, strategy: str, indices: np.ndarray) -> list[int]:
    return [int(i) for i in indices if not strategies.candidates(_row(rows, i), strategy)[1]]


def check_strategies(rows: Rows, names: Sequence[str]) -> None:
    """Fail before any training when a strategy cannot caption every training row.

    A strategy that needs the LLM tier on a build without LLM captions would
    silently train on templates (its fallback), so that is an error too.
    """
    train = rows.where("train")
    has = strategies.available([_row(rows, i) for i in train])
    exists = ", ".join(f"{k} {v}" for k, v in sorted(has.items())) or "none"
    for name in names:
        try:
            sources = strategies.sources_of(name)
        except strategies.UnknownStrategy as err:
            raise BuildError(str(err)) from None
        if name in strategies.NEEDS_LLM and not has.get("llm"):
            raise BuildError(
                f"strategy {name!r} needs LLM captions, but no training row of {rows.path} has one "
                f"(captions per source on {len(train)} train rows: {exists}); without them it "
                f"would train on template captions. Build with an llm block in the recipe, or "
                f"choose from: {', '.join(default_strategies(rows))}"
            )
        missing = _rows_without(rows, name, train)
        if missing:
            raise BuildError(
                f"strategy {name!r} needs a caption from {' or '.join(sources)} for every training "
                f"row; {len(missing)} of {len(train)} train rows have none (e.g. {rows.ids[missing[0]]}). "
                f"Captions per source on train rows: {exists}. "
                f"Strategies this build supports: {', '.join(default_strategies(rows))}"
            )


def strategy_texts(rows: Rows, strategy: str, indices: np.ndarray) -> list[list[str]]:
    """Each row's candidate captions under a strategy (one, or K for ``*_multi``)."""
    out = []
    for i in indices:
        _, texts = strategies.candidates(_row(rows, i), strategy)
        if not texts:
            raise BuildError(f"row {rows.ids[i]} has no caption for strategy {strategy!r}")
        out.append(list(texts))
    return out


def tier_shares(rows: Rows, strategy: str, indices: np.ndarray) -> dict[str, float]:
    """Share of the rows whose caption under ``strategy`` came from each tier (report, llm, template)."""
    counts = Counter(strategies.candidates(_row(rows, i), strategy)[0] or "none" for i in indices)
    total = max(1, len(indices))
    return {tier: counts[tier] / total for tier in sorted(counts)}


def row_texts(rows: Rows, strategy: str, indices: np.ndarray) -> list[list[str]]:
    """Each row's captions under a strategy; empty for a row without one (evaluation rows may lack them)."""
    return [list(strategies.candidates(_row(rows, i), strategy)[1]) for i in indices]


def twins(texts: dict[str, list[list[str]]]) -> dict[str, str | None]:
    """For each strategy, an earlier one with the very same captions on every row (else None).

    Same captions, same initial weights, same order: the same model, so it is trained once.
    """
    names = list(texts)
    return {s: next((o for o in names[:i] if texts[o] == texts[s]), None) for i, s in enumerate(names)}


def all_texts(rows: Rows, i: int) -> list[str]:
    """Every distinct caption candidate of a row (report, template, llm), for retrieval."""
    return list(dict.fromkeys(c["text"] for c in rows.captions[i] if c.get("text")))


# ---------------------------------------------------------------- images


INTERPOLATION = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                 "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}
RESIZE_MODES = ("longest", "shortest", "squash")


def fit_image(image: Image.Image, size: int, resize_mode: str = "longest", interpolation: str = "bicubic",
              fill: int = 0) -> np.ndarray:
    """``(3, size, size)`` uint8 as open_clip's resize modes make it; grayscale becomes three equal channels.

    ``longest``: the whole image scaled to fit, centred on ``fill`` (black: the
    background of every scan; padding keeps the edges of an ultrasound
    sector). ``shortest``: the short side scaled to ``size``, centre crop (the
    OpenAI preprocessing). ``squash``: resized to a square, aspect ignored.
    """
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {resize_mode!r} is not one of {RESIZE_MODES}")
    image = image.convert("RGB")
    resample = INTERPOLATION.get(interpolation, Image.Resampling.BICUBIC)
    if resize_mode == "squash":
        return np.asarray(image.resize((size, size), resample), dtype=np.uint8).transpose(2, 0, 1)
    scale = size / (max(image.size) if resize_mode == "longest" else min(image.size))
    w, h = (max(1, round(d * scale)) for d in image.size)
    resized = image.resize((w, h), resample)
    canvas = Image.new("RGB", (size, size), (fill, fill, fill))
    canvas.paste(resized, ((size - w) // 2, (size - h) // 2))  # a negative offset crops the centre
    return np.asarray(canvas, dtype=np.uint8).transpose(2, 0, 1)


def letterbox(image: Image.Image, size: int) -> np.ndarray:
    """``(3, size, size)`` uint8: the whole image scaled to fit, centred on black (``longest``)."""
    return fit_image(image, size, "longest")


@dataclass(frozen=True)
class ImageSpec:
    """What an image cache holds: the model's input size and how images are fitted to it."""

    size: int
    resize_mode: str = "longest"
    interpolation: str = "bicubic"
    fill: int = 0

    @property
    def tag(self) -> str:
        if (self.resize_mode, self.interpolation, self.fill) == ("longest", "bicubic", 0):
            return f"{self.size}px"
        return f"{self.size}px-{self.resize_mode}-{self.interpolation}-fill{self.fill}"


def _spec(size: int | ImageSpec) -> ImageSpec:
    return size if isinstance(size, ImageSpec) else ImageSpec(int(size))


def cache_path(rows: Rows, size: int | ImageSpec, cache_dir: Path) -> Path:
    return cache_dir / f"images-{_spec(size).tag}-{rows.fingerprint()}.npy"


def build_image_cache(rows: Rows, size: int | ImageSpec, cache_dir: Path) -> Path:
    """Decode every row once into ``(N, 3, size, size)`` uint8 and keep it as a ``.npy`` file.

    An existing file for the same rows and preprocessing is reused. The file is
    written beside its final name and renamed, so a reader never sees half of it.
    """
    spec = _spec(size)
    path = cache_path(rows, spec, cache_dir)
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(rows), 3, spec.size, spec.size))
    where = {(s, p): i for i, (s, p) in enumerate(zip(rows.split, rows.position, strict=True))}
    for split, part in rows.splits.items():
        for pos, item in enumerate(part.select_columns(["image"])):
            array[where[(split, pos)]] = fit_image(item["image"], spec.size, spec.resize_mode, spec.interpolation,
                                                   spec.fill)
    array.flush()
    del array
    os.replace(tmp, path)
    return path


def open_image_cache(path: Path, rows: Rows, size: int | ImageSpec) -> np.ndarray:
    """Memory-map a cache file and check it holds these rows at this size."""
    n = _spec(size).size
    array = np.load(path, mmap_mode="r")
    if array.shape != (len(rows), 3, n, n):
        raise BuildError(f"image cache {path} has shape {array.shape}, expected {(len(rows), 3, n, n)}")
    return array


# ---------------------------------------------------------------- evaluation sets


@dataclass
class EvalSet:
    """Rows evaluated together: the test split, one dataset inside it, or a held-out source."""

    name: str
    indices: np.ndarray
    classes: dict[str, list[str]]  # organ -> label names present

    @property
    def n_rows(self) -> int:
        return len(self.indices)


def classes_of(rows: Rows, indices: np.ndarray) -> dict[str, list[str]]:
    """Label names present per organ among these rows."""
    by_organ: dict[str, set[str]] = {}
    for i in indices:
        if rows.label[i] is not None:
            by_organ.setdefault(rows.organ[i], set()).add(rows.label[i])
    return {organ: sorted(labels) for organ, labels in sorted(by_organ.items())}


def _is_multiclass(classes: dict[str, list[str]]) -> bool:
    return any(len(labels) >= 2 for labels in classes.values())


def _describe(classes: dict[str, list[str]]) -> str:
    return "; ".join(f"{organ}: {', '.join(labels)}" for organ, labels in classes.items()) or "no labels"


def _candidate_sets(rows: Rows) -> dict[str, np.ndarray]:
    """Every nameable evaluation set: test, test/<dataset>, each held-out split, each dataset."""
    evaluated = [i for i, s in enumerate(rows.split) if s == "test" or s.startswith(EVAL_PREFIX)]
    sets: dict[str, np.ndarray] = {}
    test = rows.where("test")
    if len(test):
        sets["test"] = test
        for name in sorted({rows.dataset[i] for i in test}):
            sets[f"test/{name}"] = np.array([i for i in test if rows.dataset[i] == name], dtype=np.int64)
    for split in rows.split_names:
        if split.startswith(EVAL_PREFIX):
            sets[split] = rows.where(split)
    for name in sorted({rows.dataset[i] for i in evaluated}):
        sets.setdefault(name, np.array([i for i in evaluated if rows.dataset[i] == name], dtype=np.int64))
    return sets


def resolve_eval_sets(rows: Rows, names: Sequence[str] | None) -> tuple[list[EvalSet], list[str]]:
    """The sets to evaluate and, for default sets left out, why.

    Default: the test split, each dataset inside it, and each held-out source
    split; a set without two classes of one organ is skipped with a reason.
    Named sets (``test``, ``test/<dataset>``, ``eval_<source>``, or a dataset
    name meaning its rows in the test and held-out splits) must exist and have
    two classes, or this raises before any training.
    """
    sets = _candidate_sets(rows)
    chosen: list[EvalSet] = []
    skipped: list[str] = []
    if names:
        usable = [n for n, idx in sets.items() if _is_multiclass(classes_of(rows, idx))]
        for name in names:
            if name not in sets:
                raise BuildError(
                    f"evaluation set {name!r} is not in {rows.path}; sets with two or more classes: "
                    f"{', '.join(usable) or 'none'} (datasets in test or held-out splits: "
                    f"{', '.join(sorted({rows.dataset[i] for i in sets.get('test', [])}))})"
                )
            classes = classes_of(rows, sets[name])
            if not _is_multiclass(classes):
                raise BuildError(
                    f"evaluation set {name!r} has one class per organ ({_describe(classes)}): "
                    f"classification needs two. Sets with two or more classes: {', '.join(usable) or 'none'}"
                )
            chosen.append(EvalSet(name, sets[name], classes))
        return chosen, skipped
    default = [n for n in sets if n == "test" or n.startswith(("test/", EVAL_PREFIX))]
    for name in default:
        classes = classes_of(rows, sets[name])
        if _is_multiclass(classes):
            chosen.append(EvalSet(name, sets[name], classes))
        else:
            skipped.append(f"{name}: one class per organ ({_describe(classes)}), skipped")
    if not chosen:
        raise BuildError(
            f"no evaluation set with two classes of one organ in {rows.path}; "
            f"splits: {dict(Counter(rows.split))}; skipped: {skipped}"
        )
    return chosen, skipped


def is_held_out(name: str) -> bool:
    """A held-out source split (``eval_<source>``): its probes are fitted and tested within it."""
    return name.startswith(EVAL_PREFIX)


def check_folds(rows: Rows, sets: Sequence[EvalSet], folds: int) -> None:
    """Every class of a held-out set needs ``folds`` rows for stratified folds; else fail before training."""
    if folds < 2:
        raise BuildError(f"--folds {folds}: stratified folds need 2 or more")
    for eval_set in sets:
        if not is_held_out(eval_set.name):
            continue
        counts = Counter((rows.organ[i], rows.label[i]) for i in eval_set.indices if rows.label[i] is not None)
        small = {f"{organ}/{label}": n for (organ, label), n in sorted(counts.items())
                 if n < folds and len(eval_set.classes.get(organ, [])) >= 2}
        if small:
            fits = min(counts[(o, lab)] for (o, lab) in counts if len(eval_set.classes.get(o, [])) >= 2)
            raise BuildError(
                f"held-out set {eval_set.name} is too small for {folds} stratified folds: "
                f"{', '.join(f'{k} has {v} rows' for k, v in small.items())} (rows per class: "
                f"{', '.join(f'{o}/{lab} {n}' for (o, lab), n in sorted(counts.items()))}). Fix: --folds "
                f"{max(2, fits)} or fewer, or leave the set out with --eval-sets"
                if fits >= 2 else
                f"held-out set {eval_set.name} has a class with {fits} row: no stratified folds possible "
                f"(rows per class: {dict(counts)}). Fix: leave the set out with --eval-sets"
            )
