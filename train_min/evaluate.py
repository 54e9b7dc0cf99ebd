"""Evaluation of one model: alignment, retrieval, zero-shot, linear probe and few-shot probes.

Metric functions at the top are plain numpy on given matrices, so they are
tested against hand-computed values; :func:`evaluate` below encodes a build's
rows with a model and applies them to each evaluation set.

Choices that matter when reading the numbers:

- Retrieval and alignment use every caption candidate of the evaluated rows
  (report, template, LLM), identical texts merged, the same pool for every
  strategy. A text written for several images matches all of them; a query
  is a hit at k when any true match ranks in the top k, and ties count
  against the query (a constant model scores 0, not chance by luck).
- Classification runs per organ, among the labels of that organ present in
  the set: zero-shot from prompt ensembles, a logistic-regression probe on
  the train split (C chosen on validation, refit on train and validation),
  and few-shot probes (k per class from the train split) as logistic
  regression and as class prototypes. Accuracy pools the rows of all organs;
  balanced accuracy and macro AUC (one-vs-rest) are means over organs.
- Each metric carries its chance level, computed for the same rows and classes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from train_min.data import EvalSet, Rows, all_texts, classes_of, is_held_out, row_texts
from train_min.probe import LinearProbe, fit_logistic
from train_min.train import autocast_dtype, to_input

KS = (1, 5, 10)
FEW_SHOT_KS = (1, 2, 4, 8, 16)
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
PROMPTS = Path(__file__).resolve().parent / "zeroshot" / "ultrasound.json"
# Prompts whose phrasing shares no sentence frame with the caption templates (templates/*.j2): a
# zero-shot score that does not reward a model for having trained on the templates' wording.
HELDOUT_PROMPTS = Path(__file__).resolve().parent / "zeroshot" / "heldout.json"
# Metrics where larger is better; a trained model should beat an untrained one on each. Zero-shot
# with the held-out prompts (zsh_*) is left out: whether training carries over to unseen phrasing is
# what it measures, not a floor.
QUALITY = (
    "align_gap",
    *(f"{d}_r{k}" for d in ("i2t", "t2i") for k in KS),
    *(f"{m}_{s}" for m in ("zs", "lp") for s in ("acc", "bal_acc", "auc")),
    *(f"fs_{m}_bal_acc@{k}" for m in ("lp", "proto") for k in FEW_SHOT_KS),
)


# ---------------------------------------------------------------- metric functions


def match_matrix(row_texts: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """Distinct texts and ``match[i, t]``: text ``t`` is a caption of row ``i``."""
    texts = list(dict.fromkeys(t for row in row_texts for t in row))
    index = {t: j for j, t in enumerate(texts)}
    match = np.zeros((len(row_texts), len(texts)), dtype=bool)
    for i, row in enumerate(row_texts):
        match[i, [index[t] for t in row]] = True
    return texts, match


def alignment(sim: np.ndarray, match: np.ndarray) -> dict[str, float]:
    """Mean cosine of matched image-text pairs, of unmatched pairs, and the gap between them."""
    matched = float(sim[match].mean())
    unmatched = float(sim[~match].mean()) if (~match).any() else float("nan")
    return {"align_matched": matched, "align_unmatched": unmatched, "align_gap": matched - unmatched}


def _hits(sim: np.ndarray, match: np.ndarray, k: int) -> np.ndarray:
    """Per query (row of ``sim``): is a true match in the top k, ties counting against it?"""
    best = np.where(match, sim, -np.inf).max(axis=1, keepdims=True)
    rank = (np.where(match, -np.inf, sim) >= best).sum(axis=1)  # non-matches at or above the best match
    return (rank < k) & match.any(axis=1)


def recall_at_k(sim: np.ndarray, match: np.ndarray, ks: Iterable[int] = KS) -> dict[str, float]:
    """Recall@k image->text (rows of ``sim``) and text->image (columns)."""
    out = {}
    for k in ks:
        out[f"i2t_r{k}"] = float(_hits(sim, match, k).mean())
        out[f"t2i_r{k}"] = float(_hits(sim.T, match.T, k).mean())
    return out


def _chance_hits(match: np.ndarray, k: int) -> float:
    """Expected recall@k when candidates are ranked at random: 1 - C(N-m, k) / C(N, k) per query."""
    n = match.shape[1]
    m = match.sum(axis=1)
    return float(np.mean([1 - comb(n - int(mi), k) / comb(n, k) if k < n else 1.0 for mi in m]))


def recall_chance(match: np.ndarray, ks: Iterable[int] = KS) -> dict[str, float]:
    out = {}
    for k in ks:
        out[f"i2t_r{k}"] = _chance_hits(match, k)
        out[f"t2i_r{k}"] = _chance_hits(match.T, k)
    return out


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true``."""
    classes = np.unique(y_true)
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in classes]))


def auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC from ranks: the chance a positive outscores a negative, ties counting half."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def macro_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Mean one-vs-rest ROC AUC over classes with both positives and negatives (None if none)."""
    aucs = []
    for c in range(scores.shape[1]):
        positive = y_true == c
        if positive.any() and (~positive).any():
            aucs.append(auc(positive, scores[:, c]))
    return float(np.mean(aucs)) if aucs else None


def classification(y_true: np.ndarray, scores: np.ndarray, with_auc: bool = True) -> dict[str, Any]:
    """Accuracy, balanced accuracy and macro AUC of class scores ``(n, C)`` (argmax predicts)."""
    pred = scores.argmax(axis=1)
    return {
        "acc": float((pred == y_true).mean()),
        "bal_acc": balanced_accuracy(y_true, pred),
        "auc": macro_auc(y_true, scores) if with_auc else None,
        "n": len(y_true),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities in float64: ranks stay distinct where fp32 probabilities would round to 0 or 1."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)


def few_shot_indices(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` positions per class of ``labels`` drawn without replacement (all of a smaller class), sorted."""
    picked = []
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        picked.append(rng.choice(where, size=min(k, len(where)), replace=False))
    return np.sort(np.concatenate(picked))


def prototype_scores(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Cosine of each row to each class's mean (unit) feature."""
    protos = normalise(np.stack([normalise(train_x[train_y == c]).mean(axis=0) for c in range(n_classes)]))
    return normalise(x) @ protos.T


def fit_probes(x: np.ndarray, y: np.ndarray, subsets: Sequence[np.ndarray],
               cs: Sequence[float]) -> list[LinearProbe | None]:
    """Logistic regression on standardised features (unit-norm features would need a huge C), one per
    subset of the rows of ``x`` (positions) at its C, all fitted together (:mod:`train_min.probe`);
    None for a subset without every class of ``y``."""
    n = int(y.max()) + 1 if len(y) else 0
    complete = [len(np.unique(y[s])) == n > 1 for s in subsets]
    masks = np.zeros((sum(complete), len(y)), bool)
    for row, s in enumerate(s for s, ok in zip(subsets, complete, strict=True) if ok):
        masks[row, s] = True
    fitted = iter(fit_logistic(x, y, masks, [c for c, ok in zip(cs, complete, strict=True) if ok])
                  if len(masks) else [])
    return [next(fitted) if ok else None for ok in complete]


def choose_c(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray) -> float:
    """The C of the grid with the best validation balanced accuracy (the smallest on ties)."""
    probes = fit_logistic(train_x, train_y, np.ones((len(C_GRID), len(train_y)), bool), C_GRID)
    scores = [balanced_accuracy(val_y, probe.predict(val_x)) for probe in probes]
    return C_GRID[int(np.argmax(scores))]


# ---------------------------------------------------------------- prompts


def load_prompts(path: Path = PROMPTS) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if "organs" not in data:
        raise ValueError(f"prompt file {path} has no 'organs' table; keys: {sorted(data)}")
    return data


def class_prompts(prompts: dict[str, Any], organ: str, label: str, dataset: str | None = None) -> list[str]:
    """Prompt ensemble for one class: a dataset's own entry if the file has one, else the organ's.

    A class missing from the file is named by its label with spaces; an organ
    missing from the file uses the ``default`` templates with ``{organ}`` filled in.
    """
    entry = (prompts.get("datasets") or {}).get(dataset or "") or prompts["organs"].get(organ)
    if entry is None:
        entry = prompts.get("default") or {"templates": ["ultrasound of the {organ} showing {}."]}
    names = (entry.get("classes") or {}).get(label) or [label.replace("_", " ")]
    return [t.replace("{organ}", organ).format(name) for t in entry["templates"] for name in names]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower())


def ngrams(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def all_prompts(prompts: dict[str, Any], classes: dict[str, list[str]]) -> list[str]:
    """Every prompt of a table for these organs and classes (organ entries; dataset entries too)."""
    out = []
    for organ, labels in classes.items():
        for label in labels:
            out += class_prompts(prompts, organ, label)
            for dataset in prompts.get("datasets") or {}:
                out += class_prompts(prompts, organ, label, dataset)
    return list(dict.fromkeys(out))


def prompt_overlap(prompts: Sequence[str], captions: Iterable[str], n: int = 3) -> dict[str, Any]:
    """How much a prompt set reads like a caption set: the share of the prompts' word n-grams found in
    the captions, and the share of prompts that are word for word a caption."""
    caption_grams: set[tuple[str, ...]] = set()
    caption_words = set()
    for text in captions:
        caption_grams |= ngrams(text, n)
        caption_words.add(" ".join(_words(text)))
    grams = set().union(*[ngrams(p, n) for p in prompts]) if prompts else set()
    verbatim = [p for p in prompts if " ".join(_words(p)) in caption_words]
    return {
        "n": n, "n_prompts": len(prompts), "prompt_ngrams": len(grams),
        "ngram_overlap": len(grams & caption_grams) / len(grams) if grams else None,
        "verbatim": len(verbatim) / len(prompts) if prompts else None,
        "examples": sorted(verbatim)[:3],
    }


# ---------------------------------------------------------------- encoding


def inference_batch(device: torch.device) -> int:
    """Rows per forward pass: 256 on a GPU; 64 on a CPU, where larger batches of convolutions outgrow
    the caches (a 256 batch encodes the study demo 1.5 to 2 times slower on two cores)."""
    return 256 if device.type == "cuda" else 64


@torch.inference_mode()
def encode_images(
    model: nn.Module, images: np.ndarray, indices: np.ndarray, device: torch.device,
    mean: Sequence[float], std: Sequence[float], amp: bool = False, batch: int | None = None,
) -> np.ndarray:
    batch = batch or inference_batch(device)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(indices), batch):
        x = to_input(images[np.sort(indices[start : start + batch])], mean_t, std_t, device)
        with torch.autocast(device.type, dtype=autocast_dtype(device)) if amp else nullcontext():
            out.append(model.encode_image(x).float().cpu())
    feats = torch.cat(out).numpy() if out else np.zeros((0, 1), np.float32)
    # rows were read in sorted order per batch; put them back in the order asked for
    back = np.concatenate([np.argsort(np.argsort(indices[s : s + batch])) + s for s in range(0, len(indices), batch)])
    return normalise(feats[back]) if len(feats) else feats


@torch.inference_mode()
def encode_texts(model: nn.Module, tokenize: Any, texts: Sequence[str], device: torch.device,
                 amp: bool = False, batch: int | None = None) -> np.ndarray:
    batch = batch or inference_batch(device)
    out = []
    for start in range(0, len(texts), batch):
        tokens = tokenize(list(texts[start : start + batch])).to(device)
        with torch.autocast(device.type, dtype=autocast_dtype(device)) if amp else nullcontext():
            out.append(model.encode_text(tokens).float().cpu())
    return normalise(torch.cat(out).numpy())


# ---------------------------------------------------------------- evaluation of a model


@dataclass
class Encoded:
    """One model's features of every row, and its text features on demand (cached)."""

    model: nn.Module
    tokenize: Any
    device: torch.device
    amp: bool
    image: np.ndarray
    logit_scale: float
    _texts: dict[str, np.ndarray] = field(default_factory=dict)

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._texts]
        if todo:
            for t, f in zip(todo, encode_texts(self.model, self.tokenize, todo, self.device, self.amp), strict=True):
                self._texts[t] = f
        return np.stack([self._texts[t] for t in texts])


@dataclass
class Group:
    """Rows of one organ in an evaluation set, with its classes (label names, sorted)."""

    organ: str
    classes: list[str]
    rows: np.ndarray
    y: np.ndarray
    datasets: list[str]


def _groups(rows: Rows, eval_set: EvalSet) -> tuple[list[Group], list[str]]:
    groups, notes = [], []
    for organ, classes in eval_set.classes.items():
        if len(classes) < 2:
            notes.append(f"{organ}: one class ({classes[0]}), not classified")
            continue
        members = np.array([i for i in eval_set.indices if rows.organ[i] == organ and rows.label[i] in classes])
        y = np.array([classes.index(rows.label[i]) for i in members])
        groups.append(Group(organ, classes, members, y, sorted({rows.dataset[i] for i in members})))
    return groups, notes


def _labelled(rows: Rows, split: str, organ: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    idx = np.array(
        [i for i in rows.where(split) if rows.organ[i] == organ and rows.label[i] in classes], dtype=np.int64
    )
    return idx, np.array([classes.index(rows.label[i]) for i in idx], dtype=np.int64)


class Probes:
    """Linear and few-shot probes per (organ, classes), fitted once per model and reused by every set."""

    def __init__(self, rows: Rows, enc: Encoded, seed: int, draws: int, ks: Sequence[int]) -> None:
        self.rows, self.enc, self.seed, self.draws, self.ks = rows, enc, seed, draws, ks
        self._cache: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}

    def get(self, organ: str, classes: list[str]) -> dict[str, Any]:
        key = (organ, tuple(classes))
        if key not in self._cache:
            self._cache[key] = self._fit(organ, classes)
        return self._cache[key]

    def _fit(self, organ: str, classes: list[str]) -> dict[str, Any]:
        train, ty = _labelled(self.rows, "train", organ, classes)
        absent = [c for i, c in enumerate(classes) if not (ty == i).any()]
        if absent:
            return {"note": f"{organ}: no train rows of {', '.join(absent)}, no probe"}
        val, vy = _labelled(self.rows, "validation", organ, classes)
        x, vx = self.enc.image[train], self.enc.image[val]
        c = choose_c(x, ty, vx, vy) if len(val) else 1.0
        rng = np.random.default_rng([self.seed, len(classes), *map(ord, organ)])
        shots = {k: [few_shot_indices(ty, k, rng) for _ in range(self.draws)] for k in self.ks}
        # the probe on train and validation, and the few-shot probes on train rows, in one batch
        supports = [s for picks in shots.values() for s in picks]
        subsets = [np.arange(len(ty) + len(vy)), *supports]
        probe, *shot_probes = fit_probes(np.concatenate([x, vx]), np.concatenate([ty, vy]), subsets,
                                         [c] * len(subsets))
        fitted = iter(shot_probes)
        few = {k: [(next(fitted), x[s], ty[s]) for s in picks] for k, picks in shots.items()}
        note = None if len(val) else f"{organ}: no validation rows, C=1"
        return {"probe": probe, "C": c, "few": few, "note": note}


def _pool(results: list[dict[str, Any]], prefix: str) -> dict[str, float | None]:
    """Accuracy pooled over rows; balanced accuracy and AUC averaged over groups."""
    if not results:
        return {f"{prefix}_acc": None, f"{prefix}_bal_acc": None, f"{prefix}_auc": None}
    n = sum(r["n"] for r in results)
    aucs = [r["auc"] for r in results if r["auc"] is not None]
    return {
        f"{prefix}_acc": sum(r["acc"] * r["n"] for r in results) / n,
        f"{prefix}_bal_acc": float(np.mean([r["bal_acc"] for r in results])),
        f"{prefix}_auc": float(np.mean(aucs)) if aucs else None,
    }


def chance_levels(groups: list[Group], prefix: str) -> dict[str, float | None]:
    if not groups:
        return {f"{prefix}_acc": None, f"{prefix}_bal_acc": None, f"{prefix}_auc": None}
    n = sum(len(g.rows) for g in groups)
    return {
        f"{prefix}_acc": sum(len(g.rows) / len(g.classes) for g in groups) / n,
        f"{prefix}_bal_acc": float(np.mean([1 / len(g.classes) for g in groups])),
        f"{prefix}_auc": 0.5,
    }


def _zero_shot(group: Group, enc: Encoded, prompts: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    """Zero-shot metrics of one organ group and its predictions; AUC ranks float64 log-probabilities."""
    dataset = group.datasets[0] if len(group.datasets) == 1 else None
    class_feats = []
    for label in group.classes:
        feats = enc.texts(class_prompts(prompts, group.organ, label, dataset))
        class_feats.append(normalise(feats.mean(axis=0)))
    image = enc.image[group.rows].astype(np.float64)
    logits = enc.logit_scale * image @ np.stack(class_feats).astype(np.float64).T
    scores = log_softmax(logits)
    return classification(group.y, scores), scores.argmax(axis=1)


def _few_shot_draws(fitted: dict[str, Any], x: np.ndarray, n: int) -> dict[int, tuple[list[np.ndarray], ...]]:
    """Predictions of each few-shot draw (logistic regression, prototypes) on ``x``, per k."""
    out = {}
    for k, draws in fitted["few"].items():
        lp, proto = [], []
        for probe, sx, sy in draws:
            proto.append(prototype_scores(sx, sy, x, n).argmax(axis=1))
            if probe is not None:
                lp.append(probe.predict(x))
            else:  # a support without every class fits no regression: it predicts its most frequent class
                lp.append(np.full(len(x), np.bincount(sy).argmax()))
        out[k] = (lp, proto)
    return out


def _few_shot_metrics(y: np.ndarray, preds: dict[int, tuple[list[np.ndarray], ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, (lp, proto) in preds.items():
        out[f"fs@{k}"] = {
            name: {"acc": float(np.mean([(p == y).mean() for p in draws])),
                   "bal_acc": float(np.mean([balanced_accuracy(y, p) for p in draws]))}
            for name, draws in (("lp", lp), ("proto", proto))
        }
    return out


def _probe_metrics(group: Group, fitted: dict[str, Any], enc: Encoded) -> tuple[dict[str, Any], np.ndarray]:
    """Probes fitted on the train split, tested on the group's rows."""
    x = enc.image[group.rows]
    proba = fitted["probe"].predict_proba(x)
    out: dict[str, Any] = {"lp": classification(group.y, proba), "C": fitted["C"], "protocol": "train split"}
    out.update(_few_shot_metrics(group.y, _few_shot_draws(fitted, x, len(group.classes))))
    return out, proba.argmax(axis=1)


def _inner_split(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """One stratified validation third of the training part, to choose C on (as the train-split probe
    chooses it on the validation split); None (C=1) when a class has fewer than two rows."""
    from sklearn.model_selection import StratifiedShuffleSplit

    if len(y) == 0 or int(np.bincount(y).min()) < 2:
        return None
    n_classes = len(np.unique(y))
    size = max(n_classes, round(len(y) / 3))
    if len(y) - size < n_classes:
        return None
    return next(StratifiedShuffleSplit(1, test_size=size, random_state=seed).split(x, y))


def _fold_cs(x: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], seed: int) -> list[float]:
    """C per fold from the grid, every fold's grid fitted in one batch."""
    inner = [_inner_split(x[train], y[train], seed) for train, _ in folds]
    subsets, scored = [], []
    for (train, _), split in zip(folds, inner, strict=True):
        if split is not None:
            subsets += [train[split[0]]] * len(C_GRID)
            scored.append(train[split[1]])
    probes = iter(fit_probes(x, y, subsets, list(C_GRID) * len(scored)))
    chosen = []
    for split in inner:
        if split is None:
            chosen.append(1.0)
            continue
        val = scored.pop(0)
        scores = [balanced_accuracy(y[val], next(probes).predict(x[val])) for _ in C_GRID]
        chosen.append(C_GRID[int(np.argmax(scores))])
    return chosen


def cross_validated_probes(group: Group, enc: Encoded, seed: int, folds: int, draws: int,
                           ks: Sequence[int]) -> tuple[dict[str, Any], np.ndarray]:
    """Linear and few-shot probes fitted and tested within a held-out set.

    Linear probe: stratified folds; each row is predicted by a probe fitted on
    the other folds (C chosen on a validation third of them), and the metrics
    are those of the pooled out-of-fold predictions. Few-shot: each draw takes
    k rows per class of the set as support and tests on every other row.
    """
    from sklearn.model_selection import StratifiedKFold

    x, y, n = enc.image[group.rows], group.y, len(group.classes)
    proba = np.zeros((len(y), n))
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y))
    cs = _fold_cs(x, y, splits, seed)
    rng = np.random.default_rng([seed, n, *map(ord, group.organ)])
    c = float(np.median(cs))
    drawn = {k: [few_shot_indices(y, k, rng) for _ in range(draws)] for k in ks}
    tested = {k: [s for s in supports if _queryable(y, s)] for k, supports in drawn.items()}
    # the fold probes and the few-shot probes in one batch
    supports = [s for chosen in tested.values() for s in chosen]
    fitted = fit_probes(x, y, [train for train, _ in splits] + supports, cs + [c] * len(supports))
    for (_, test), probe in zip(splits, fitted, strict=False):
        if probe is None:
            raise ValueError(f"{group.organ}: a fold's training rows lack a class; {folds} stratified folds "
                             f"need {folds} rows of every class (train_min.data.check_folds says so before training)")
        proba[test] = probe.predict_proba(x[test])
    out: dict[str, Any] = {"lp": classification(y, proba), "C": cs, "protocol": f"within-set {folds}-fold"}
    shots = iter(fitted[len(splits):])
    for k, chosen in tested.items():
        lp, proto = [], []
        for support in chosen:
            shot = next(shots)
            query = np.setdiff1d(np.arange(len(y)), support)
            sx, sy, qx, qy = x[support], y[support], x[query], y[query]
            proto.append(balanced_accuracy(qy, prototype_scores(sx, sy, qx, n).argmax(axis=1)))
            if shot is not None:
                lp.append(balanced_accuracy(qy, shot.predict(qx)))
            else:
                lp.append(balanced_accuracy(qy, np.full(len(qy), np.bincount(sy).argmax())))
        out[f"fs@{k}"] = {"lp": {"bal_acc": float(np.mean(lp)) if lp else None},
                          "proto": {"bal_acc": float(np.mean(proto)) if proto else None}}
    return out, proba.argmax(axis=1)


def _queryable(y: np.ndarray, support: np.ndarray) -> bool:
    """Whether the rows outside a support hold at least two classes (a few-shot draw to test on)."""
    query = np.setdiff1d(np.arange(len(y)), support)
    return len(query) > 0 and len(np.unique(y[query])) >= 2


def evaluate(
    model: nn.Module,
    tokenize: Any,
    rows: Rows,
    images: np.ndarray,
    sets: Sequence[EvalSet],
    device: torch.device,
    mean: Sequence[float],
    std: Sequence[float],
    prompts: dict[str, Any],
    seed: int = 0,
    amp: bool = False,
    draws: int = 3,
    ks: Sequence[int] = FEW_SHOT_KS,
    probes: bool = True,
    pair_strategies: Sequence[str] = (),
    folds: int = 5,
) -> dict[str, Any]:
    """Every metric of every set for one model: ``{set: {"metrics", "chance", "groups", "per_image", "notes"}}``.

    ``prompts``: one prompt table (zero-shot as ``zs_*``) or ``{prefix: table}``
    (``{"zs": study prompts, "zsh": held-out prompts}``). ``pair_strategies``:
    strategies whose captions of the evaluated rows give a paired alignment
    (``pair:<strategy>``). Held-out sets (``eval_<source>``) fit their probes
    within the set (``folds`` stratified folds); the others on the train split.
    ``probes=False`` leaves out the linear and few-shot probes.
    """
    model.eval()
    tables = {"zs": prompts} if "organs" in prompts else dict(prompts)
    fit_on_train = probes and any(not is_held_out(s.name) for s in sets)
    parts = [s.indices for s in sets] + ([rows.where("train"), rows.where("validation")] if fit_on_train else [])
    needed = np.unique(np.concatenate(parts))
    encoded = encode_images(model, images, needed, device, mean, std, amp)
    feats = np.zeros((len(rows), encoded.shape[1]), np.float32)
    feats[needed] = encoded
    scale = float(model.logit_scale.detach().exp().clamp(max=100)) if hasattr(model, "logit_scale") else 100.0
    enc = Encoded(model, tokenize, device, amp, feats, scale)
    fitted = Probes(rows, enc, seed, draws, ks) if fit_on_train else None
    # every text of every set in one pass (full batches), before the sets read them from the cache
    evaluated = np.unique(np.concatenate([s.indices for s in sets]))
    wanted = [t for i in evaluated for t in all_texts(rows, i)]
    wanted += [rows.policy[i] for i in evaluated if rows.policy is not None and rows.policy[i]]
    wanted += [t for strategy in pair_strategies for row in row_texts(rows, strategy, evaluated) for t in row]
    for table in tables.values():
        wanted += all_prompts(table, classes_of(rows, evaluated))
    enc.texts(list(dict.fromkeys(wanted)))
    options = {"probes": probes, "tables": tables, "ks": ks, "pair": tuple(pair_strategies), "seed": seed,
               "folds": folds, "draws": draws}
    # Probes are many small regressions: BLAS threads cost more than they give (ten times on two cores).
    with threadpool_limits(limits=1):
        return {s.name: _evaluate_set(rows, s, enc, fitted, options) for s in sets}


def _paired(rows: Rows, eval_set: EvalSet, enc: Encoded, pair: Sequence[str]) -> dict[str, list[float | None]]:
    """Per row: cosine of the image with its policy caption, and the mean over its captions per strategy."""
    out: dict[str, list[float | None]] = {}
    image = enc.image[eval_set.indices]
    if rows.policy is not None:
        texts = [rows.policy[i] for i in eval_set.indices]
        have = [t for t in texts if t]
        feats = dict(zip(have, enc.texts(have), strict=True)) if have else {}
        out["pair_policy"] = [float(image[j] @ feats[t]) if t else None for j, t in enumerate(texts)]
    for strategy in pair:
        per_row = row_texts(rows, strategy, eval_set.indices)
        flat = list(dict.fromkeys(t for row in per_row for t in row))
        feats = dict(zip(flat, enc.texts(flat), strict=True)) if flat else {}
        out[f"pair:{strategy}"] = [float(np.mean([image[j] @ feats[t] for t in row])) if row else None
                                   for j, row in enumerate(per_row)]
    return out


def _evaluate_set(rows: Rows, eval_set: EvalSet, enc: Encoded, probes: Probes | None,
                  options: dict[str, Any]) -> dict[str, Any]:
    ks = options["ks"]
    texts, match = match_matrix([all_texts(rows, i) for i in eval_set.indices])
    sim = enc.image[eval_set.indices] @ enc.texts(texts).T
    metrics: dict[str, Any] = {**alignment(sim, match), **recall_at_k(sim, match)}
    chance: dict[str, Any] = {"align_gap": 0.0, **recall_chance(match)}
    per_image: dict[str, list[Any]] = {f"i2t_hit@{k}": _hits(sim, match, k).tolist() for k in KS}
    for key, values in _paired(rows, eval_set, enc, options["pair"]).items():
        per_image[key] = values
        defined = [v for v in values if v is not None]
        metrics[key] = float(np.mean(defined)) if defined else None
    groups, notes = _groups(rows, eval_set)
    position = {int(r): j for j, r in enumerate(eval_set.indices)}
    per_image["group"] = [None] * eval_set.n_rows
    per_image["y"] = [None] * eval_set.n_rows
    for gi, g in enumerate(groups):
        for r, label in zip(g.rows, g.y, strict=True):
            per_image["group"][position[int(r)]] = gi
            per_image["y"][position[int(r)]] = int(label)
    group_out: dict[str, Any] = {g.organ: {"classes": g.classes, "n": len(g.rows)} for g in groups}
    for prefix, table in options["tables"].items():
        results = []
        preds: list[Any] = [None] * eval_set.n_rows
        for g in groups:
            result, pred = _zero_shot(g, enc, table)
            group_out[g.organ][prefix] = result
            results.append(result)
            for r, p in zip(g.rows, pred, strict=True):
                preds[position[int(r)]] = int(p)
        metrics.update(_pool(results, prefix))
        chance.update(chance_levels(groups, prefix))
        per_image[f"{prefix}_pred"] = preds
    probed, lp = [], []
    lp_preds: list[Any] = [None] * eval_set.n_rows
    held_out = is_held_out(eval_set.name)
    for g in groups:
        if not options["probes"]:
            continue
        if held_out:
            result, pred = cross_validated_probes(g, enc, options["seed"], options["folds"], options["draws"], ks)
        else:
            fitted = probes.get(g.organ, g.classes)
            if fitted.get("note"):
                notes.append(fitted["note"])
            if "probe" not in fitted:
                continue
            result, pred = _probe_metrics(g, fitted, enc)
        group_out[g.organ].update(result)
        probed.append(g)
        lp.append(result["lp"])
        for r, p in zip(g.rows, pred, strict=True):
            lp_preds[position[int(r)]] = int(p)
    per_image["lp_pred"] = lp_preds
    metrics.update(_pool(lp, "lp"))
    chance.update(chance_levels(probed, "lp"))
    for k in ks:
        for kind in ("lp", "proto"):
            values = [group_out[g.organ][f"fs@{k}"][kind]["bal_acc"] for g in probed]
            values = [v for v in values if v is not None]
            metrics[f"fs_{kind}_bal_acc@{k}"] = float(np.mean(values)) if values else None
            chance[f"fs_{kind}_bal_acc@{k}"] = chance["lp_bal_acc"]
    return {
        "n_rows": eval_set.n_rows, "n_texts": len(texts), "metrics": metrics, "chance": chance,
        "groups": group_out, "notes": notes, "per_image": per_image,
        "probe_protocol": (f"within-set {options['folds']}-fold" if held_out else "train split") if probed else None,
    }
