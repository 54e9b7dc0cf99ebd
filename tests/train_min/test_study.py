"""The study's grid in one run from a study file: baselines on top, strategies x text towers x fine-tuning.

Built on the study layout of the demo phantom (BUSI and AUL held out). The "pretrained" model is a
saved tiny-vit checkpoint: what matters here is that every configuration runs from the same
weights, is evaluated the same way, and that the summary reports it as the study does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.train_min.conftest import run_cli
from train_min import models

pytestmark = pytest.mark.slow

STRATEGIES = ["report_template", "template_only"]


@pytest.fixture(scope="module")
def grid(study_build: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("grid")
    ckpt = tmp / "start.pt"
    torch.save({"state_dict": models.create("tiny-vit", None, 21).state_dict()}, ckpt)
    study = tmp / "study.yaml"
    study.write_text(
        f"data: {study_build}\n"
        "model: tiny-vit\n"
        f"pretrained: {ckpt}\n"
        f"strategies: [{', '.join(STRATEGIES)}]\n"
        f"text_tower: [clip, 'hf:{tiny_bert}']\n"
        "finetune: [full, frozen-image]\n"
        "seeds: [0, 1]\n"
        "epochs: 2\n"
        "lr_image: 1.0e-4\n"
        "eval_sets: [test, eval_busi]\n"
        "bootstrap: 300\n"
        "baselines:\n"
        f"  start: tiny-vit@{ckpt}\n"
        "device: cpu\n"
    )
    out = tmp / "out"
    assert run_cli("--study", str(study), "--epochs", "1", "--out", str(out)) == 0  # the command line wins
    return out, json.loads((out / "summary.json").read_text())


def test_rows_are_baselines_then_starting_points_then_every_configuration(grid: tuple[Path, dict[str, Any]]) -> None:
    out, result = grid
    towers = ["clip", "hf:tiny-bert"]
    expected = ["baseline:start", *[f"untrained:{t}" for t in towers]]
    expected += [f"{s}:{t}:{m}" for t in towers for m in ("full", "frozen-image") for s in STRATEGIES]
    assert [r["id"] for r in result["rows"]] == expected
    assert result["config"]["epochs"] == 1 and result["config"]["text_towers"] == towers
    md = (out / "summary.md").read_text()
    test_table = md[md.index("## test"):md.index("### Differences")]
    order = ["| **start** |", "| initial weights, no training | – | clip |",
             "| initial weights, no training | – | hf:tiny-bert |",
             "| report_template | report_template | clip | full |",
             "| template_only | template_only | hf:tiny-bert | frozen-image |"]
    assert [test_table.index(line) for line in order] == sorted(test_table.index(line) for line in order)


def test_a_baseline_is_measured_exactly_as_the_rows_it_sits_above(grid: tuple[Path, dict[str, Any]]) -> None:
    """The baseline is the CLIP arm's starting checkpoint: the same numbers on every set and metric, over
    two seeds too (the evaluation's folds and few-shot draws do not follow the training seed)."""
    _, result = grid
    base, start = result["aggregate"]["baseline:start"], result["aggregate"]["untrained:clip"]
    assert set(base) == set(start) == {"test", "eval_busi"}
    for set_name in base:
        assert set(base[set_name]) == set(start[set_name])
        for key, value in base[set_name].items():
            assert value["mean"] == pytest.approx(start[set_name][key]["mean"], abs=1e-6), (set_name, key)


def test_the_bert_arm_starts_from_the_clip_image_weights_with_fine_tuning_defaults(
        grid: tuple[Path, dict[str, Any]]) -> None:
    _, result = grid
    arms = result["config"]["arms"]
    assert (
        arms["hf:tiny-bert"]["weights"].startswith("image: ") and arms["clip"]["pretrained_towers"] == ["image", "text"]
    )
    assert arms["hf:tiny-bert"]["pretrained_towers"] == ["image", "text"]
    bert = arms["hf:tiny-bert"]["train"]
    assert (bert["lr_image"], bert["lr_text"], bert["lr_new"], bert["select_best"]) == (1e-4, 2e-5, 1e-4, True)
    log = result["train"]["report_template:hf:tiny-bert:full-seed0"]
    assert log["best_epoch"] == 1 and len(log["val_loss"]) == 1
    assert log["lr"]["new"] == 1e-4 and log["lr"]["image"] == 1e-4 and log["lr"]["text"] == 2e-5
    frozen = json.loads((grid[0] / "run-report_template-hf-tiny-bert-frozen-image-seed0.json").read_text())
    full = json.loads((grid[0] / "run-report_template-hf-tiny-bert-full-seed0.json").read_text())
    assert frozen["parameters"]["trainable"] < full["parameters"]["trainable"] == full["parameters"]["total"]


def test_held_out_sets_fit_their_probes_within_the_set(grid: tuple[Path, dict[str, Any]]) -> None:
    out, result = grid
    assert result["sets"]["eval_busi"]["probe_protocol"] == "within-set 5-fold"
    assert result["sets"]["test"]["probe_protocol"] == "train split"
    run = json.loads((out / "run-untrained-clip-seed0.json").read_text())
    busi = run["eval"]["eval_busi"]
    assert busi["groups"]["breast"]["protocol"] == "within-set 5-fold" and len(busi["groups"]["breast"]["C"]) == 5
    assert all(p is not None for p in busi["per_image"]["lp_pred"])  # every image predicted out of fold
    md = (out / "summary.md").read_text()
    assert (
        "### Few-shot balanced accuracy, eval_busi (k images per class drawn from the set, tested on its other rows"
        in md
    )
    assert "### Few-shot balanced accuracy, test (k images per class from the train split" in md
    assert (out / "fewshot.png").read_bytes()[:4] == b"\x89PNG"


def test_paired_alignment_tiers_and_prompt_overlap(grid: tuple[Path, dict[str, Any]]) -> None:
    out, result = grid
    agg = result["aggregate"]["template_only:clip:full"]["test"]
    assert -1 <= agg["pair:template_only"]["mean"] <= 1 and -1 <= agg["pair_policy"]["mean"] <= 1
    shares = result["tiers"]["report_template"]
    assert set(shares) == {"report", "template"} and sum(shares.values()) == pytest.approx(1.0)
    assert result["tiers"]["template_only"] == {"template": 1.0}
    overlap = result["prompt_overlap"]["template_only"]
    assert overlap["zs"]["ngram_overlap"] > 0.2 > 0.05 > overlap["zsh"]["ngram_overlap"]
    assert overlap["zsh"]["verbatim"] == 0.0
    md = (out / "summary.md").read_text()
    assert "| template_only | template 100% | 1.0 |" in md and "paired cos (own) | paired cos (policy)" in md


def test_paired_bootstrap_of_each_strategy_against_the_reference(grid: tuple[Path, dict[str, Any]]) -> None:
    out, result = grid
    assert result["config"]["reference"] == "report_template"
    for set_name in ("test", "eval_busi"):
        entries = result["bootstrap"][set_name]
        assert set(entries) == {f"template_only:{t}:{m}" for t in ("clip", "hf:tiny-bert")
                                for m in ("full", "frozen-image")}
        for entry in entries.values():
            assert entry["reference"].startswith("report_template:") and entry["draws"] == 300
            for m in entry["metrics"].values():
                assert m["low"] <= m["diff"] <= m["high"]
                assert m["excludes_0"] == (m["low"] > 0 or m["high"] < 0)
    assert "### Differences from report_template, eval_busi (paired bootstrap over 36 images" in \
        (out / "summary.md").read_text()
