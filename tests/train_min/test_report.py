"""The summary from results: mean ± std over seeds, diversity beside quality, Spearman across strategies."""

from __future__ import annotations

from typing import Any

import pytest

from train_min import report
from train_min.evaluate import QUALITY

NAMES = ["report_template", "template_only", "template_multi"]
# zero-shot balanced accuracy per strategy and seed; MTLD per strategy (higher for the first)
ZS = {"untrained": [0.30, 0.32], "report_template": [0.50, 0.54], "template_only": [0.60, 0.62],
      "template_multi": [0.40, 0.44]}
MTLD = {"report_template": 45.0, "template_only": 26.0, "template_multi": 19.0}


def _run(name: str, seed: int) -> dict[str, Any]:
    metrics = {k: 0.1 for k in QUALITY}
    metrics["zs_bal_acc"] = ZS[name][seed]
    metrics["lp_bal_acc"] = 0.5 + (0.1 if name == "untrained" else 0.2) + 0.01 * seed
    sets = {"test": {"metrics": metrics, "chance": {k: 0.05 for k in QUALITY}, "n_rows": 10, "n_texts": 12,
                     "notes": []}}
    return {"strategy": name, "seed": seed, "eval": sets, "train": None if name == "untrained" else {"steps": 1}}


def _result(names: list[str]) -> dict[str, Any]:
    runs = [_run(n, s) for n in ["untrained", *names] for s in (0, 1)]
    agg = report.aggregate(runs)
    div = {n: {"values": {k: (MTLD[n] if k == "mtld" else 0.5) for k in report.DIVERSITY_KEYS},
               "fidelity": {k: 0.9 for k in report.FIDELITY_KEYS}, "n_captions": 10, "from": "diversity.json"}
           for n in names}
    config = {"build_name": "b", "rows": 10, "splits": "train 6, test 4", "configuration": "tiny · clip · full · 1 ep",
              "model": "tiny", "text_tower": "clip", "finetune": "full", "epochs": 1, "batch_size": 2, "lr": 0.1,
              "augment": False, "precision": "fp32", "device": "cpu", "world_size": 1, "seeds": [0, 1],
              "command": "python train_min/run.py --data b"}
    return {"config": config, "strategies": names, "main_set": "test", "aggregate": agg,
            "sets": {"test": {"n_rows": 10, "n_texts": 12}}, "chance": {"test": runs[0]["eval"]["test"]["chance"]},
            "captions_per_image": {n: 1.0 for n in names}, "diversity": div,
            "correlations": report.correlations(div, agg, names, "test"), "notes": []}


def test_means_and_stds_over_seeds_per_strategy() -> None:
    agg = _result(NAMES)["aggregate"]
    assert agg["template_only"]["test"]["zs_bal_acc"]["mean"] == pytest.approx(0.61)
    assert agg["template_only"]["test"]["zs_bal_acc"]["std"] == pytest.approx(0.01414, abs=1e-4)
    assert agg["template_only"]["test"]["zs_bal_acc"]["n"] == 2


def test_spearman_of_diversity_against_downstream_results_across_three_strategies() -> None:
    result = _result(NAMES)
    # MTLD ranks 1, 2, 3 against zero-shot 2, 1, 3: rho = 1 - 6 * (1 + 1 + 0) / (3 * 8) = 0.5
    assert result["correlations"]["mtld"]["zs_bal_acc"]["rho"] == pytest.approx(0.5)
    # every strategy has the same lp_bal_acc means: undefined, and said so
    assert result["correlations"]["mtld"]["lp_bal_acc"]["rho"] is None
    assert result["correlations"]["ttr"]["zs_bal_acc"]["note"] == "undefined: one side is constant across strategies"
    md = report.summary_markdown(result)
    assert "Spearman ρ across 3 strategies" in md
    assert "| mtld | undefined: a value is missing | 0.50 | undefined: one side is constant across strategies |" in md
    assert "| template_only | template_only | clip | full |" in md and "0.610 ± 0.014" in md


def test_with_fewer_than_three_strategies_the_correlation_is_called_undefined() -> None:
    md = report.summary_markdown(_result(NAMES[:2]))
    assert "Spearman rank correlation across strategies is undefined here: 2 strategies, it needs 3 or more." in md
    assert "Spearman ρ across" not in md


def test_the_checks_list_metrics_a_strategy_does_not_beat_the_untrained_model_on() -> None:
    result = _result(NAMES)
    won, lost = report.beats_untrained(result["aggregate"], "template_only", "test")
    assert "zs_bal_acc" in won and "lp_bal_acc" in won
    assert "align_gap" in lost  # equal to the untrained model's: not beaten
    md = report.summary_markdown(result)
    assert f"template_only beats the model it started from on 2 of {len(QUALITY)}" in md
