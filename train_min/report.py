"""Results of a comparison: mean ± std over seeds, the Markdown summary, diversity beside quality.

Beside each strategy's downstream metrics the summary puts its lexical
diversity and findings fidelity (from the build's ``diversity.json``, or
computed here with the same package functions for a strategy the build did
not tabulate), and the Spearman rank correlation of each against zero-shot
and linear-probe balanced accuracy across strategies: whether the more
diverse captions are the ones that train the better model on this build.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from echocaptions.captions import strategies
from train_min.data import Rows
from train_min.evaluate import FEW_SHOT_KS, QUALITY

DIVERSITY_KEYS = ("ttr", "mtld", "self_bleu_4", "distinct_2_corpus", "medical_term_coverage")
FIDELITY_KEYS = ("precision", "recall", "contradiction_rate")
TARGETS = ("zs_bal_acc", "lp_bal_acc")
MAIN_COLUMNS = (
    ("align_gap", "align gap"),
    ("i2t_r1", "i2t R@1"), ("i2t_r5", "i2t R@5"), ("i2t_r10", "i2t R@10"),
    ("t2i_r1", "t2i R@1"), ("t2i_r5", "t2i R@5"), ("t2i_r10", "t2i R@10"),
    ("zs_acc", "ZS acc"), ("zs_bal_acc", "ZS bal acc"), ("zs_auc", "ZS AUC"),
    ("lp_acc", "LP acc"), ("lp_bal_acc", "LP bal acc"), ("lp_auc", "LP AUC"),
)
OTHER_COLUMNS = (
    ("align_gap", "align gap"), ("i2t_r5", "i2t R@5"), ("t2i_r5", "t2i R@5"),
    ("zs_bal_acc", "ZS bal acc"), ("zs_auc", "ZS AUC"), ("lp_bal_acc", "LP bal acc"),
)


# ---------------------------------------------------------------- aggregation


def mean_std(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean and sample standard deviation of the defined values (std 0 for one value)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return {"mean": float(np.mean(vals)), "std": std, "n": len(vals)}


def aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{name: {set: {metric: mean_std}}}`` over the seeds of each strategy (and ``untrained``)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_name.setdefault(run["strategy"], []).append(run)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, group in by_name.items():
        out[name] = {}
        for set_name in group[0]["eval"]:
            keys = group[0]["eval"][set_name]["metrics"]
            out[name][set_name] = {
                k: mean_std([r["eval"][set_name]["metrics"].get(k) for r in group]) for k in keys
            }
    return out


def beats_untrained(agg: dict[str, Any], name: str, set_name: str) -> tuple[list[str], list[str]]:
    """Quality metrics where the strategy's mean is above / not above the untrained model's."""
    won, lost = [], []
    for key in QUALITY:
        ours = agg[name][set_name].get(key, {}).get("mean")
        base = agg["untrained"][set_name].get(key, {}).get("mean")
        if ours is None or base is None:
            continue
        (won if ours > base else lost).append(key)
    return won, lost


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

    path = rows.path / "diversity.json"
    table = json.loads(path.read_text()).get("strategy", {}) if path.exists() else {}
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


def correlations(div: dict[str, Any], agg: dict[str, Any], names: Sequence[str], set_name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    measures = [("values", k) for k in DIVERSITY_KEYS] + [("fidelity", k) for k in FIDELITY_KEYS]
    for part, key in measures:
        label = key if part == "values" else f"fidelity_{key}"
        out[label] = {}
        for target in TARGETS:
            xs = [div[n][part][key] for n in names]
            ys = [agg[n][set_name].get(target, {}).get("mean") for n in names]
            rho, why = spearman(xs, ys)
            out[label][target] = {"rho": rho, "note": why, "n": len(names)}
    return out


# ---------------------------------------------------------------- Markdown


def _cell(stat: dict[str, Any] | None, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    if stat.get("n", 1) > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def _plain(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return lines


def summary_markdown(result: dict[str, Any]) -> str:
    """The ``summary.md`` text from the ``summary.json`` content."""
    cfg, agg, names = result["config"], result["aggregate"], result["strategies"]
    main = result["main_set"]
    chance = result["chance"]
    lines = [
        "# Caption strategies compared",
        "",
        f"Build `{cfg['build_name']}`: {cfg['rows']} rows ({cfg['splits']}). "
        f"Configuration `{cfg['configuration']}`: model {cfg['model']}, text tower {cfg['text_tower']}, "
        f"fine-tuning {cfg['finetune']}, {cfg['epochs']} epochs, batch {cfg['batch_size']}, lr {cfg['lr']}, "
        f"augmentation {'random resized crop' if cfg['augment'] else 'none'}, "
        f"{cfg['precision']} on {cfg['device']} (world size {cfg['world_size']}); seeds {cfg['seeds']} "
        f"(mean ± std over seeds where there are several). Every strategy starts from the same weights "
        f"and sees the same images in the same order.",
        "",
        f"Command: `{cfg['command']}`",
        "",
        f"## {main} ({result['sets'][main]['n_rows']} rows, {result['sets'][main]['n_texts']} distinct texts)",
        "",
    ]
    head = ["strategy", "configuration", "captions/image", *[label for _, label in MAIN_COLUMNS]]
    body = [["chance", "", "", *[_plain(chance[main].get(k)) for k, _ in MAIN_COLUMNS]]]
    for name in ["untrained", *names]:
        k_cap = "" if name == "untrained" else f"{result['captions_per_image'][name]:.1f}"
        body.append([name, cfg["configuration"], k_cap, *[_cell(agg[name][main].get(k)) for k, _ in MAIN_COLUMNS]])
    lines += _table(head, body)
    lines += ["", "Alignment gap: mean cosine of matched image–text pairs minus that of unmatched pairs "
              "(matched / unmatched cosines in summary.json). Retrieval pool: every caption candidate "
              "of the rows (report, template, LLM), the same for every strategy. ZS: zero-shot with "
              "prompt ensembles; LP: logistic-regression probe (C on validation); both per organ.", ""]
    lines += _few_shot_lines(result, main)
    lines += _other_sets_lines(result)
    lines += _diversity_lines(result)
    lines += _honesty_lines(result)
    return "\n".join(lines) + "\n"


def _few_shot_lines(result: dict[str, Any], main: str) -> list[str]:
    agg, chance = result["aggregate"], result["chance"][main]
    head = ["strategy", "probe", *[f"k={k}" for k in FEW_SHOT_KS]]
    body = []
    for name in ["untrained", *result["strategies"]]:
        for kind, label in (("lp", "logistic regression"), ("proto", "class prototypes")):
            body.append([name, label, *[_cell(agg[name][main].get(f"fs_{kind}_bal_acc@{k}")) for k in FEW_SHOT_KS]])
    return [f"### Few-shot balanced accuracy, {main} (k train images per class; chance "
            f"{_plain(chance.get('lp_bal_acc'))}; plot: fewshot.png)", "", *_table(head, body), ""]


def _other_sets_lines(result: dict[str, Any]) -> list[str]:
    others = [s for s in result["sets"] if s != result["main_set"]]
    if not others:
        return []
    head = ["set", "rows", "strategy", *[label for _, label in OTHER_COLUMNS]]
    body = []
    for s in others:
        n = str(result["sets"][s]["n_rows"])
        body.append([s, n, "chance", *[_plain(result["chance"][s].get(k)) for k, _ in OTHER_COLUMNS]])
        for name in ["untrained", *result["strategies"]]:
            body.append([s, n, name, *[_cell(result["aggregate"][name][s].get(k)) for k, _ in OTHER_COLUMNS]])
    return ["## Other evaluation sets", "", *_table(head, body), ""]


def _diversity_lines(result: dict[str, Any]) -> list[str]:
    div, names, main = result["diversity"], result["strategies"], result["main_set"]
    head = ["strategy", *DIVERSITY_KEYS, "findings precision", "findings recall", "contradictions",
            "ZS bal acc", "LP bal acc", "from"]
    body = []
    for n in names:
        d = div[n]
        body.append([n, *[_plain(d["values"][k]) for k in DIVERSITY_KEYS],
                     *[_plain(d["fidelity"][k]) for k in FIDELITY_KEYS],
                     *[_cell(result["aggregate"][n][main].get(t)) for t in TARGETS], d["from"]])
    lines = ["## Diversity is not quality", "",
             "Lexical diversity and findings fidelity of each strategy's training captions "
             "(all splits; `computed` where the build's diversity.json has no entry for the strategy; "
             "a several-captions strategy over all K captions per image, so size-dependent measures "
             f"such as TTR see a larger corpus), beside its downstream results on {main}.", "",
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
    for name in result["strategies"]:
        won, lost = beats_untrained(result["aggregate"], name, main)
        verdict = "all" if not lost else f"{len(won)} of {len(won) + len(lost)}; not: {', '.join(lost)}"
        lines.append(f"- {name} beats the untrained model on {verdict} quality metrics of {main}.")
    for name, k in result["captions_per_image"].items():
        if strategies.is_multi(name) and k <= 1.0:
            lines.append(f"- {name} has one caption per image on this build: it samples from one.")
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
