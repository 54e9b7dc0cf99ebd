"""Results of a comparison: mean ± std over seeds, paired bootstrap intervals, and the Markdown summary.

Rows of the summary are configurations: baselines (evaluated without
training), the model as it starts (``untrained``) per text tower, then each
strategy × text tower × fine-tuning mode. Differences between strategies come
with paired bootstrap confidence intervals over the test images (the same
resampled images for both sides, metrics averaged over seeds first).

Beside each strategy's downstream metrics the summary puts its lexical
diversity and findings fidelity (from the build's ``diversity.json``, or
computed here with the same package functions for a strategy the build did
not tabulate), the share of its training captions from each tier, how much the
zero-shot prompts read like its captions, and the Spearman rank correlation of
diversity against zero-shot and linear-probe balanced accuracy across
strategies.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from echocaptions.captions import strategies
from train_min.data import Rows
from train_min.evaluate import FEW_SHOT_KS, QUALITY

DIVERSITY_KEYS = ("ttr", "mtld", "self_bleu_4", "distinct_2_corpus", "medical_term_coverage")
FIDELITY_KEYS = ("precision", "recall", "contradiction_rate")
TARGETS = ("zsh_bal_acc", "zs_bal_acc", "lp_bal_acc")
MAIN_COLUMNS = (
    ("pair_own", "paired cos (own)"), ("pair_policy", "paired cos (policy)"), ("align_gap", "align gap"),
    ("i2t_r1", "i2t R@1"), ("i2t_r5", "i2t R@5"), ("t2i_r1", "t2i R@1"), ("t2i_r5", "t2i R@5"),
    ("zs_bal_acc", "ZS bal acc"), ("zsh_bal_acc", "ZS-H bal acc"), ("zsh_auc", "ZS-H AUC"),
    ("lp_bal_acc", "LP bal acc"), ("lp_auc", "LP AUC"),
)
OTHER_COLUMNS = (
    ("pair_policy", "paired cos (policy)"), ("i2t_r5", "i2t R@5"), ("t2i_r5", "t2i R@5"),
    ("zs_bal_acc", "ZS bal acc"), ("zsh_bal_acc", "ZS-H bal acc"), ("zsh_auc", "ZS-H AUC"),
    ("lp_bal_acc", "LP bal acc"), ("lp_auc", "LP AUC"),
)
# Metrics whose differences get paired bootstrap intervals: computed from per-image results.
BOOT_METRICS = ("zsh_bal_acc", "zs_bal_acc", "lp_bal_acc", "i2t_r5", "pair_policy")
LLM_WARN_SHARE = 0.5  # an LLM strategy with fewer LLM captions than this mostly trains on its fallback


# ---------------------------------------------------------------- aggregation


def mean_std(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean and sample standard deviation of the defined values (std 0 for one value)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return {"mean": float(np.mean(vals)), "std": std, "n": len(vals)}


def _rid(run: dict[str, Any]) -> str:
    return run.get("id") or run["strategy"]


def aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{row id: {set: {metric: mean_std}}}`` over the seeds of each row."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_id.setdefault(_rid(run), []).append(run)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for rid, group in by_id.items():
        out[rid] = {}
        for set_name in group[0]["eval"]:
            keys = group[0]["eval"][set_name]["metrics"]
            out[rid][set_name] = {
                k: mean_std([r["eval"][set_name]["metrics"].get(k) for r in group]) for k in keys
            }
    return out


def stat(agg: dict[str, Any], row: dict[str, Any], set_name: str, key: str) -> dict[str, Any] | None:
    """A row's statistic; ``pair_own`` is the paired cosine with the row's own strategy captions."""
    if key == "pair_own":
        if not row.get("strategy"):
            return None
        key = f"pair:{row['strategy']}"
    return agg.get(row["id"], {}).get(set_name, {}).get(key)


def untrained_of(row: dict[str, Any]) -> str:
    return f"untrained:{row['tower']}"


def beats_untrained(
    agg: dict[str, Any], rid: str, set_name: str, base: str = "untrained"
) -> tuple[list[str], list[str]]:
    """Quality metrics where the row's mean is above / not above the untrained model's."""
    won, lost = [], []
    for key in QUALITY:
        ours = agg[rid][set_name].get(key, {}).get("mean")
        ref = agg[base][set_name].get(key, {}).get("mean")
        if ours is None or ref is None:
            continue
        (won if ours > ref else lost).append(key)
    return won, lost


def tier_warnings(tiers: dict[str, dict[str, float]]) -> list[str]:
    """Strategies named after the LLM tier that trained mostly on another tier."""
    out = []
    for name, shares in tiers.items():
        if name not in strategies.NEEDS_LLM:
            continue
        llm = shares.get("llm", 0.0)
        if llm < LLM_WARN_SHARE:
            rest = ", ".join(f"{t} {v:.0%}" for t, v in shares.items() if t != "llm")
            out.append(f"{name}: only {llm:.0%} of training rows have an LLM caption ({rest}); its results "
                       f"mostly measure its fallback, not LLM captions")
    return out


# ---------------------------------------------------------------- paired bootstrap


def _weights(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``(draws, n)`` counts of each image in each resample (row 0: the sample itself)."""
    idx = rng.integers(0, n, size=(draws, n))
    w = np.zeros((draws + 1, n))
    w[0] = 1.0
    np.add.at(w[1:], (np.repeat(np.arange(draws), n), idx.ravel()), 1.0)
    return w


def weighted_metric(per_image: dict[str, list[Any]], key: str, w: np.ndarray) -> np.ndarray:
    """A metric of one run under each resample's image weights ``w`` (``(B, n)``); nan where undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if key.endswith("_bal_acc"):
            pred = per_image.get(f"{key[: -len('_bal_acc')]}_pred")
            if pred is None:
                return np.full(len(w), np.nan)
            group, y = per_image["group"], per_image["y"]
            ok = np.array([g is not None and p is not None for g, p in zip(group, pred, strict=True)])
            if not ok.any():
                return np.full(len(w), np.nan)
            g = np.array([v if v is not None else -1 for v in group])
            yy = np.array([v if v is not None else -1 for v in y])
            correct = np.array([p == t for p, t in zip(pred, y, strict=True)], dtype=float)
            per_group = []
            for gi in np.unique(g[ok]):
                recalls = []
                for c in np.unique(yy[ok & (g == gi)]):
                    m = ok & (g == gi) & (yy == c)
                    recalls.append((w[:, m] @ correct[m]) / w[:, m].sum(axis=1))
                per_group.append(np.nanmean(np.stack(recalls), axis=0))
            return np.nanmean(np.stack(per_group), axis=0)
        source = {"i2t_r1": "i2t_hit@1", "i2t_r5": "i2t_hit@5", "i2t_r10": "i2t_hit@10"}.get(key, key)
        values = per_image.get(source)
        if values is None:
            return np.full(len(w), np.nan)
        ok = np.array([v is not None for v in values])
        if not ok.any():
            return np.full(len(w), np.nan)
        v = np.array([float(x) if x is not None else 0.0 for x in values])
        return (w[:, ok] @ v[ok]) / w[:, ok].sum(axis=1)


def bootstrap(runs: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], reference: str,
              sets: Sequence[str], draws: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Paired bootstrap of each trained row's difference from the reference strategy of its arm.

    For every set, the same resampled images serve both rows; each row's metric
    is averaged over its seeds before the difference. ``{set: {row id: {metric:
    {"diff", "low", "high", "excludes_0"}}}}``.
    """
    by_id: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_id.setdefault(_rid(run), []).append(run)
    out: dict[str, Any] = {}
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    for set_name in sets:
        out[set_name] = {}
        n = None
        for row in rows:
            if row["kind"] != "trained" or row["strategy"] == reference:
                continue
            ref_id = f"{reference}:{row['tower']}:{row['finetune']}"
            if ref_id not in by_id or row["id"] not in by_id:
                continue
            ours = sorted(by_id[row["id"]], key=lambda r: r["seed"])
            theirs = sorted(by_id[ref_id], key=lambda r: r["seed"])
            n = n or len(ours[0]["eval"][set_name]["per_image"]["group"])
            rng = np.random.default_rng([seed, n, len(set_name)])
            w = _weights(n, draws, rng)
            entry = {}
            for key in BOOT_METRICS:
                with warnings.catch_warnings():  # a metric a run does not have (no probe): all nan, skipped
                    warnings.simplefilter("ignore", RuntimeWarning)
                    a = np.nanmean([weighted_metric(r["eval"][set_name]["per_image"], key, w) for r in ours], axis=0)
                    b = np.nanmean([weighted_metric(r["eval"][set_name]["per_image"], key, w) for r in theirs],
                                   axis=0)
                diff = a - b
                if np.isnan(diff[0]):
                    continue
                low, high = np.nanpercentile(diff[1:], [lo_q, hi_q])
                entry[key] = {"diff": float(diff[0]), "low": float(low), "high": float(high),
                              "excludes_0": bool(low > 0 or high < 0)}
            out[set_name][row["id"]] = {"reference": ref_id, "metrics": entry, "level": level, "draws": draws}
    return out


# ---------------------------------------------------------------- diversity and correlation


def _strategy_rows(rows: Rows, name: str) -> list[dict[str, Any]]:
    """One row per caption the strategy trains on (all K of a ``*_multi`` one), in id order."""
    out = []
    for i in sorted(range(len(rows)), key=lambda i: rows.ids[i]):
        _, texts = strategies.candidates({"captions": rows.captions[i]}, name)
        for text in texts:
            out.append({"caption": text, "organ": rows.organ[i], "label": rows.label[i],
                        "findings": rows.findings[i], "strategy": name})
    return out


def diversity(rows: Rows, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per strategy: diversity values, fidelity, and where they come from."""
    from echocaptions.metrics.diversity import grouped

    table = ((rows.build.diversity() if rows.build else None) or {}).get("strategy", {})
    out = {}
    for name in names:
        if name in table:
            report, origin = table[name], "diversity.json"
        else:
            report, origin = grouped(_strategy_rows(rows, name), ["strategy"])[name], "computed"
        out[name] = {
            "values": {k: report["values"].get(k) for k in DIVERSITY_KEYS},
            "fidelity": {k: (report.get("fidelity") or {}).get(k) for k in FIDELITY_KEYS},
            "n_captions": report.get("n_captions"),
            "from": origin,
        }
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, str]:
    """Spearman's rho and a reason when it is undefined."""
    from scipy.stats import spearmanr

    if len(x) < 3:
        return None, f"undefined: {len(x)} strateg{'y' if len(x) == 1 else 'ies'}, needs 3 or more"
    if any(v is None for v in (*x, *y)):
        return None, "undefined: a value is missing"
    if len(set(x)) == 1 or len(set(y)) == 1:
        return None, "undefined: one side is constant across strategies"
    rho = float(spearmanr(x, y).statistic)
    return rho, ""


def strategy_rows(names: Sequence[str], rows: Sequence[dict[str, Any]] | None) -> dict[str, str]:
    """Strategy -> the row id that stands for it in per-strategy tables: its first arm and mode."""
    if not rows:
        return {n: n for n in names}
    trained = [r for r in rows if r["kind"] == "trained"]
    if not trained:
        return {}
    arm = (trained[0]["tower"], trained[0]["finetune"])
    return {r["strategy"]: r["id"] for r in trained if (r["tower"], r["finetune"]) == arm}


def correlations(div: dict[str, Any], agg: dict[str, Any], names: Sequence[str], set_name: str,
                 rows: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    ids = strategy_rows(names, rows)
    names = [n for n in names if n in ids]
    out: dict[str, Any] = {}
    measures = [("values", k) for k in DIVERSITY_KEYS] + [("fidelity", k) for k in FIDELITY_KEYS]
    for part, key in measures:
        label = key if part == "values" else f"fidelity_{key}"
        out[label] = {}
        for target in TARGETS:
            xs = [div[n][part][key] for n in names]
            ys = [agg[ids[n]][set_name].get(target, {}).get("mean") for n in names]
            rho, why = spearman(xs, ys)
            out[label][target] = {"rho": rho, "note": why, "n": len(names)}
    return out


# ---------------------------------------------------------------- Markdown


def _cell(value: dict[str, Any] | None, digits: int = 3) -> str:
    if not value or value.get("mean") is None:
        return "–"
    if value.get("n", 1) > 1:
        return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"
    return f"{value['mean']:.{digits}f}"


def _plain(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return lines


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Row descriptions; results without them (one arm, by strategy) get plain ones."""
    if result.get("rows"):
        return result["rows"]
    out = [{"id": "untrained", "kind": "untrained", "label": "untrained", "strategy": None, "tower": "clip",
            "finetune": None}]
    return out + [{"id": n, "kind": "trained", "label": n, "strategy": n, "tower": "clip", "finetune": "full"}
                  for n in result["strategies"]]


def _marked(result: dict[str, Any], row: dict[str, Any], set_name: str, key: str, text: str) -> str:
    entry = result.get("bootstrap", {}).get(set_name, {}).get(row["id"], {}).get("metrics", {}).get(key)
    return f"{text} *" if entry and entry["excludes_0"] else text


def _describe(row: dict[str, Any]) -> list[str]:
    if row["kind"] == "baseline":
        return [f"**{row['label']}**", "–", "–", "–"]
    if row["kind"] == "untrained":
        return [row["label"], "–", row["tower"], "–"]
    return [row["strategy"], row["strategy"], row["tower"], row["finetune"]]


def summary_markdown(result: dict[str, Any]) -> str:
    """The ``summary.md`` text from the ``summary.json`` content."""
    cfg, agg = result["config"], result["aggregate"]
    main = result["main_set"]
    chance = result["chance"]
    rows = _rows(result)
    arms = cfg.get("arms") or {}
    arm_text = "; ".join(
        f"{tower}: {a['model']} ({a['weights']}), {a['train']['epochs']} epochs, lr "
        f"{_lrs(a['train'], a.get('pretrained_towers', []))}, "
        f"{'best epoch on validation loss' if a['train'].get('select_best') else 'last epoch'}, "
        f"input {a['preprocess']['size'] if a.get('preprocess') else '?'} px "
        f"{a['preprocess']['resize_mode'] if a.get('preprocess') else ''}"
        for tower, a in arms.items())
    lines = [
        "# Caption strategies compared",
        "",
        f"Build `{cfg['build_name']}`: {cfg['rows']} rows ({cfg['splits']}). Model {cfg['model']}"
        f"{' (' + str(cfg.get('pretrained')) + ')' if cfg.get('pretrained') else ''}; text towers "
        f"{', '.join(cfg.get('text_towers') or [cfg.get('text_tower', 'clip')])}; fine-tuning "
        f"{', '.join(cfg['finetune']) if isinstance(cfg['finetune'], list) else cfg['finetune']}; batch "
        f"{cfg['batch_size']}, augmentation {'random resized crop' if cfg['augment'] else 'none'}, "
        f"{cfg['precision']} on {cfg['device']} (world size {cfg['world_size']}); seeds {cfg['seeds']} "
        f"(mean ± std over seeds where there are several). Every strategy of a text tower starts from the "
        f"same weights and sees the same images in the same order.",
        "",
    ]
    if arm_text:
        lines += [f"Per text tower: {arm_text}.", ""]
    lines += [f"Command: `{cfg['command']}`", ""]
    for warning in result.get("warnings", []):
        lines += [f"> **Warning:** {warning}", ""]
    lines += [f"## {main} ({result['sets'][main]['n_rows']} rows, {result['sets'][main]['n_texts']} distinct texts)",
              ""]
    head = ["row", "strategy", "text tower", "fine-tuning", *[label for _, label in MAIN_COLUMNS]]
    body = [["chance", "", "", "", *[_plain(chance[main].get(k)) if k in chance[main] else "–"
                                     for k, _ in MAIN_COLUMNS]]]
    for row in rows:
        cells = [_marked(result, row, main, k, _cell(stat(agg, row, main, k))) for k, _ in MAIN_COLUMNS]
        body.append([*_describe(row), *cells])
    lines += _table(head, body)
    baselines = [r for r in rows if r["kind"] == "baseline"]
    if baselines:
        lines += ["", "Baselines (evaluated without training, each with its own preprocessing): " + "; ".join(
            f"**{r['label']}** = `{r.get('model')}` ({r.get('preprocess', {}).get('size', '?')} px "
            f"{r.get('preprocess', {}).get('resize_mode', '')}, activation {r.get('activation', '?')})"
            for r in baselines) + "."]
    ref = cfg.get("reference")
    lines += ["", "Paired cos: mean cosine of each image with its own caption, under the row's strategy "
              "(own; the mean over its K captions for a several-captions strategy) and the build's policy "
              "caption (policy, the same text for every row). Align gap: mean cosine of matched image–text "
              "pairs minus unmatched ones. Retrieval pool: every caption candidate of the rows (report, "
              "template, LLM), the same for every row. ZS: zero-shot with the study's prompts "
              "(zeroshot/ultrasound.json); ZS-H: with held-out prompts that share no sentence frame with the "
              "caption templates (zeroshot/heldout.json); LP: logistic-regression probe; all per organ. "
              + (f"`*`: the paired bootstrap interval of the difference from {ref} (same tower and "
                 "fine-tuning) excludes 0." if ref else ""), ""]
    lines += _bootstrap_lines(result)
    for set_name in result["sets"]:
        lines += _few_shot_lines(result, set_name)
    lines += _other_sets_lines(result)
    lines += _tier_lines(result)
    lines += _diversity_lines(result)
    lines += _honesty_lines(result)
    return "\n".join(lines) + "\n"


def _lrs(train: dict[str, Any], towers: Sequence[str]) -> str:
    if not towers:
        return f"{train['lr']:g}"
    parts = [f"{t} {train.get('lr_' + t) or train['lr']:g}" for t in ("image", "text") if t in towers]
    return ", ".join([*parts, f"new {train.get('lr_new') or train['lr']:g}"])


def _bootstrap_lines(result: dict[str, Any]) -> list[str]:
    boot = result.get("bootstrap") or {}
    rows = {r["id"]: r for r in _rows(result)}
    lines: list[str] = []
    for set_name, entries in boot.items():
        if not entries:
            continue
        head = ["row", "vs", *BOOT_METRICS]
        body = []
        for rid, entry in entries.items():
            cells = []
            for key in BOOT_METRICS:
                m = entry["metrics"].get(key)
                cells.append("–" if m is None else
                             f"{m['diff']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}]{' *' if m['excludes_0'] else ''}")
            body.append([rid if rid not in rows else f"{rows[rid]['strategy']} · {rows[rid]['tower']} · "
                         f"{rows[rid]['finetune']}", entry["reference"].split(":")[0], *cells])
        first = next(iter(entries.values()))
        lines += [f"### Differences from {result['config'].get('reference')}, {set_name} (paired bootstrap over "
                  f"{result['sets'][set_name]['n_rows']} images, {first['draws']} resamples, "
                  f"{first['level']:.0%} intervals; `*` excludes 0)", "", *_table(head, body), ""]
    return lines


def _few_shot_lines(result: dict[str, Any], set_name: str) -> list[str]:
    agg, chance = result["aggregate"], result["chance"][set_name]
    head = ["row", "probe", *[f"k={k}" for k in FEW_SHOT_KS]]
    body = []
    for row in _rows(result):
        name = " · ".join(x for x in (row["label"], row.get("tower") if row["kind"] == "trained" else None,
                                       row.get("finetune")) if x)
        for kind, label in (("lp", "logistic regression"), ("proto", "class prototypes")):
            body.append([name, label, *[_cell(agg[row["id"]][set_name].get(f"fs_{kind}_bal_acc@{k}"))
                                        for k in FEW_SHOT_KS]])
    protocol = result["sets"][set_name].get("probe_protocol") or "train split"
    where = "drawn from the set, tested on its other rows" if protocol.startswith("within") \
        else "from the train split"
    return [f"### Few-shot balanced accuracy, {set_name} (k images per class {where}; {protocol}; chance "
            f"{_plain(chance.get('lp_bal_acc'))}; plot: fewshot.png)", "", *_table(head, body), ""]


def _other_sets_lines(result: dict[str, Any]) -> list[str]:
    others = [s for s in result["sets"] if s != result["main_set"]]
    if not others:
        return []
    head = ["set", "rows", "probes", "row", *[label for _, label in OTHER_COLUMNS]]
    body = []
    for s in others:
        n = str(result["sets"][s]["n_rows"])
        protocol = result["sets"][s].get("probe_protocol") or "–"
        body.append([s, n, protocol, "chance", *[_plain(result["chance"][s].get(k)) for k, _ in OTHER_COLUMNS]])
        for row in _rows(result):
            name = " · ".join(x for x in (row["label"], row.get("tower") if row["kind"] == "trained" else None,
                                           row.get("finetune")) if x)
            body.append([s, n, protocol, name, *[_marked(result, row, s, k, _cell(stat(result["aggregate"], row, s, k)))
                                                 for k, _ in OTHER_COLUMNS]])
    return ["## Other evaluation sets", "",
            "Held-out sets (`eval_<source>`) fit their linear and few-shot probes within the set (stratified "
            "folds, out-of-fold predictions), as the field reports external datasets; test sets fit them on "
            "the train split.", "", *_table(head, body), ""]


def _tier_lines(result: dict[str, Any]) -> list[str]:
    tiers, overlap = result.get("tiers") or {}, result.get("prompt_overlap") or {}
    if not tiers:
        return []
    head = ["strategy", "training captions by tier", "captions/image", "ZS prompts: 3-gram overlap",
            "ZS verbatim", "ZS-H prompts: 3-gram overlap", "ZS-H verbatim"]
    body = []
    for name, shares in tiers.items():
        o = overlap.get(name, {})
        body.append([name, ", ".join(f"{t} {v:.0%}" for t, v in shares.items()),
                     f"{result['captions_per_image'].get(name, 0):.1f}",
                     *[_pct((o.get(k) or {}).get(m)) for k in ("zs", "zsh") for m in ("ngram_overlap", "verbatim")]])
    return ["## What each strategy trained on", "",
            "Share of training rows whose caption came from each tier, and how much each zero-shot prompt set "
            "reads like the strategy's training captions (share of the prompts' word 3-grams found in them; "
            "share of prompts that are word for word a training caption). A high overlap tilts zero-shot "
            "towards that strategy; ZS-H is the fair comparison.", "", *_table(head, body), ""]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _diversity_lines(result: dict[str, Any]) -> list[str]:
    div, names, main = result["diversity"], result["strategies"], result["main_set"]
    ids = strategy_rows(names, result.get("rows"))
    names = [n for n in names if n in ids]
    if not names:
        return []
    head = ["strategy", *DIVERSITY_KEYS, "findings precision", "findings recall", "contradictions",
            *[t.replace("zsh", "ZS-H").replace("zs", "ZS").replace("lp", "LP").replace("_bal_acc", " bal acc")
              for t in TARGETS], "from"]
    body = []
    for n in names:
        d = div[n]
        body.append([n, *[_plain(d["values"][k]) for k in DIVERSITY_KEYS],
                     *[_plain(d["fidelity"][k]) for k in FIDELITY_KEYS],
                     *[_cell(result["aggregate"][ids[n]][main].get(t)) for t in TARGETS], d["from"]])
    lines = ["## Diversity is not quality", "",
             "Lexical diversity and findings fidelity of each strategy's training captions "
             "(all splits; `computed` where the build's diversity.json has no entry for the strategy; "
             "a several-captions strategy over all K captions per image, so size-dependent measures "
             f"such as TTR see a larger corpus), beside its downstream results on {main} "
             "(first text tower and fine-tuning mode).", "",
             *_table(head, body), ""]
    corr = result["correlations"]
    if len(names) < 3:
        count = f"{len(names)} strateg{'y' if len(names) == 1 else 'ies'}"
        lines.append(f"Spearman rank correlation across strategies is undefined here: {count}, it needs 3 or more.")
        return [*lines, ""]
    lines += [f"Spearman ρ across {len(names)} strategies (with so few strategies, read the sign, not the size):", ""]
    head = ["measure", *[f"ρ vs {t}" for t in TARGETS]]
    body = [[m, *[_plain(v[t]["rho"], 2) if v[t]["rho"] is not None else v[t]["note"] for t in TARGETS]]
            for m, v in corr.items()]
    return [*lines, *_table(head, body), ""]


def _honesty_lines(result: dict[str, Any]) -> list[str]:
    lines = ["## Checks", ""]
    main = result["main_set"]
    agg = result["aggregate"]
    for row in _rows(result):
        if row["kind"] != "trained":
            continue
        base = untrained_of(row) if result.get("rows") else "untrained"
        won, lost = beats_untrained(agg, row["id"], main, base)
        verdict = "all" if not lost else f"{len(won)} of {len(won) + len(lost)}; not: {', '.join(lost)}"
        who = row["id"] if result.get("rows") else row["strategy"]
        lines.append(f"- {who} beats the model it started from on {verdict} quality metrics of {main}.")
    for name, k in result["captions_per_image"].items():
        if strategies.is_multi(name) and k <= 1.0:
            lines.append(f"- {name} has one caption per image on this build: it samples from one.")
    for warning in result.get("warnings", []):
        lines.append(f"- warning: {warning}")
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    return [*lines, ""]


def write(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(result, indent=2, sort_keys=True, default=_json) + "\n")
    (out / "summary.md").write_text(summary_markdown(result))


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
