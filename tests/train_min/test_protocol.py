"""Pieces of the protocol on fixed inputs: zero-shot AUC, within-set probes, prompt overlap, the
paired bootstrap, preprocessing modes, the distributed backend, the loss outside autocast, the
best epoch."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from train_min import data, evaluate, models, report
from train_min.run import backend_for, parse_baseline
from train_min.train import TextBank, TrainConfig, train


def test_zero_shot_auc_ranks_log_probabilities_where_fp32_probabilities_tie() -> None:
    # confident logits: in fp32 every probability of class 0 rounds to 1.0 and AUC sees a tie; the
    # float64 log-probabilities keep the order (the negative, row 1, is the least confident)
    logits = np.array([[40.0, 0.0], [30.0, 0.0], [35.0, 0.0]], dtype=np.float32)
    positive = np.array([True, False, True])
    assert len(np.unique(evaluate.softmax(logits)[:, 0])) == 1
    assert evaluate.auc(positive, evaluate.softmax(logits)[:, 0]) == 0.5
    scores = evaluate.log_softmax(logits)
    assert scores.dtype == np.float64 and len(np.unique(scores[:, 0])) == 3
    assert evaluate.auc(positive, scores[:, 0]) == 1.0
    assert np.allclose(np.exp(scores).sum(axis=1), 1.0)


def _group(x: np.ndarray, y: np.ndarray) -> tuple[evaluate.Group, evaluate.Encoded]:
    enc = evaluate.Encoded(model=None, tokenize=None, device=torch.device("cpu"), amp=False,
                           image=evaluate.normalise(x.astype(np.float32)), logit_scale=100.0)
    return evaluate.Group("breast", ["a", "b", "c"], np.arange(len(y)), y, ["d"]), enc


def test_within_set_probes_predict_every_row_out_of_fold() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 12)
    centres = rng.normal(size=(3, 16)) * 4
    group, enc = _group(centres[y] + rng.normal(size=(36, 16)), y)
    result, pred = evaluate.cross_validated_probes(group, enc, seed=0, folds=4, draws=2, ks=(1, 4))
    assert result["protocol"] == "within-set 4-fold" and len(result["C"]) == 4
    assert result["lp"]["bal_acc"] == 1.0 and (pred == y).all()
    assert result["fs@4"]["proto"]["bal_acc"] > 0.9 and result["fs@4"]["lp"]["bal_acc"] > 0.9
    # no signal: out-of-fold predictions sit near chance (a probe fitted on its test rows would not)
    noise, _ = _group(rng.normal(size=(36, 16)), y)
    result, _ = evaluate.cross_validated_probes(noise, enc_from(noise, rng), seed=0, folds=4, draws=2, ks=(1,))
    assert result["lp"]["bal_acc"] < 0.6


def enc_from(group: evaluate.Group, rng: np.random.Generator) -> evaluate.Encoded:
    return _group(rng.normal(size=(len(group.y), 16)), group.y)[1]


def test_prompt_overlap_counts_shared_word_trigrams_and_verbatim_prompts() -> None:
    captions = ["Breast ultrasound showing a benign lesion.", "Normal breast tissue on ultrasound."]
    prompts = ["breast ultrasound showing a benign lesion.", "a scan that depicts a benign lesion."]
    result = evaluate.prompt_overlap(prompts, captions)
    # prompt trigrams: 4 of the first (all in the captions) + 5 of the second (one shared: "a benign lesion")
    assert result["prompt_ngrams"] == 8 and result["ngram_overlap"] == pytest.approx(4 / 8)
    assert result["verbatim"] == 0.5 and result["examples"] == ["breast ultrasound showing a benign lesion."]
    study = evaluate.load_prompts(evaluate.PROMPTS)
    heldout = evaluate.load_prompts(evaluate.HELDOUT_PROMPTS)
    classes = {organ: list(entry["classes"]) for organ, entry in study["organs"].items()}
    assert set(evaluate.all_prompts(heldout, classes)).isdisjoint(evaluate.all_prompts(study, classes))


def _per_image(pred: list[int], y: list[int], groups: list[int], hits: list[bool]) -> dict[str, list]:
    return {"zs_pred": pred, "y": y, "group": groups, "i2t_hit@5": hits}


def test_weighted_metrics_with_unit_weights_are_the_metrics() -> None:
    y = [0, 0, 1, 1, 1, 0]
    pred = [0, 1, 1, 1, 0, 0]
    per = _per_image(pred, y, [0, 0, 0, 0, 0, 1], [True, False, True, True, False, False])
    w = np.ones((1, 6))
    # group 0: recall 1/2 (class 0) and 2/3 (class 1); group 1: class 0 recall 1 -> mean of groups
    assert report.weighted_metric(per, "zs_bal_acc", w)[0] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1) / 2)
    assert report.weighted_metric(per, "i2t_r5", w)[0] == pytest.approx(0.5)
    w2 = np.array([[2, 0, 0, 0, 0, 1.0]])  # image 0 twice, image 5 once
    assert report.weighted_metric(per, "i2t_r5", w2)[0] == pytest.approx(2 / 3)


def _runs(rid: str, pred: list[int], y: list[int]) -> list[dict]:
    per = _per_image(pred, y, [0] * len(y), [True] * len(y))
    return [{"id": rid, "seed": 0, "eval": {"test": {"per_image": per}}}]


def test_paired_bootstrap_marks_a_clear_difference_and_not_a_tie() -> None:
    y = [0, 1] * 30
    good = list(y)
    coin = [0] * 60
    rows = [{"id": f"{s}:clip:full", "kind": "trained", "strategy": s, "tower": "clip", "finetune": "full"}
            for s in ("ref", "better", "same")]
    runs = _runs("ref:clip:full", coin, y) + _runs("better:clip:full", good, y) + _runs("same:clip:full", coin, y)
    result = report.bootstrap(runs, rows, "ref", ["test"], draws=500)
    better = result["test"]["better:clip:full"]["metrics"]["zs_bal_acc"]
    assert better["diff"] == pytest.approx(0.5) and better["excludes_0"] and better["low"] > 0.3
    same = result["test"]["same:clip:full"]["metrics"]["zs_bal_acc"]
    assert same == {"diff": 0.0, "low": 0.0, "high": 0.0, "excludes_0": False}
    assert "ref:clip:full" not in result["test"]


def test_an_llm_strategy_that_fell_back_to_templates_is_flagged() -> None:
    tiers = {"llm_only": {"llm": 0.1, "template": 0.9}, "report_llm": {"llm": 0.7, "report": 0.3},
             "template_only": {"template": 1.0}}
    warnings = report.tier_warnings(tiers)
    assert warnings == ["llm_only: only 10% of training rows have an LLM caption (template 90%); its results "
                        "mostly measure its fallback, not LLM captions"]


def test_resize_modes_as_open_clip_names_them() -> None:
    ramp = np.tile(np.arange(200, dtype=np.uint8), (100, 1))  # 200 wide, 100 high, brighter to the right
    image = Image.fromarray(ramp)
    longest = data.fit_image(image, 50, "longest")
    assert longest.shape == (3, 50, 50) and longest[:, :12].max() == 0 and longest[:, 13:37].max() > 0
    shortest = data.fit_image(image, 50, "shortest")
    assert shortest[0, 25, 0] > 40 and shortest[0, 25, -1] < 160  # the centre of the ramp, edges cropped
    squash = data.fit_image(image, 50, "squash")
    assert squash[0, 0, 0] < 10 and squash[0, 0, -1] > 190 and squash[0, 0].min() == squash[0, -1].min()
    assert data.cache_path(_FakeRows(), data.ImageSpec(50), data.Path("c")).name == "images-50px-f.npy"
    assert "squash-bilinear" in data.cache_path(_FakeRows(), data.ImageSpec(50, "squash", "bilinear"),
                                                data.Path("c")).name


class _FakeRows:
    def fingerprint(self) -> str:
        return "f"


def test_the_process_group_backend_follows_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAIN_MIN_BACKEND", raising=False)
    assert backend_for("cpu", cuda_available=True) == "gloo"  # a CPU run under torchrun on a GPU host
    assert backend_for("cuda", cuda_available=True) == "nccl"
    assert backend_for("auto", cuda_available=True) == "nccl"
    assert backend_for("auto", cuda_available=False) == "gloo"


def test_baseline_specs() -> None:
    assert parse_baseline("openai=ViT-B-16@openai") == ("openai", "ViT-B-16", "openai")
    assert parse_baseline("bm=hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224") == (
        "bm", "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", None)
    assert parse_baseline("mine=tiny@/runs/a@b/x.pt") == ("mine", "tiny", "/runs/a@b/x.pt")
    with pytest.raises(ValueError, match="expected NAME=MODEL"):
        parse_baseline("ViT-B-16@openai")


def _tiny_data(n: int = 16) -> tuple[torch.nn.Module, np.ndarray, TextBank, models.Preprocess]:
    model = models.create("tiny-vit", None, 0)
    pre = models.preprocess(model)
    images = np.random.default_rng(0).integers(0, 256, size=(n, 3, pre.size, pre.size), dtype=np.uint8)
    words = ["breast", "thyroid", "liver", "lung", "benign", "malignant", "normal", "covid"]
    bank = TextBank([[f"{words[i % 8]} {words[(i * 3) % 8]} {i}"] for i in range(n)], models.tokenizer("tiny-vit"))
    return model, images, bank, pre


def test_the_contrastive_loss_runs_in_fp32_outside_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    from open_clip.loss import ClipLoss

    seen = []
    forward = ClipLoss.forward

    def spy(self, image_features, text_features, logit_scale, *args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), image_features.dtype))
        return forward(self, image_features, text_features, logit_scale, *args, **kwargs)

    monkeypatch.setattr(ClipLoss, "forward", spy)
    model, images, bank, pre = _tiny_data()
    train(model, images, np.arange(16), bank, TrainConfig(epochs=1, batch_size=8, lr=1e-3, precision="amp"),
          torch.device("cpu"), pre.mean, pre.std)
    assert seen and all(state == (False, torch.float32) for state in seen)


def test_the_best_epoch_on_validation_is_kept() -> None:
    model, images, bank, pre = _tiny_data(24)
    words = ["breast", "thyroid", "liver", "lung"]
    val = (np.arange(16, 24), TextBank([[f"{words[i % 4]} {i}"] for i in range(8)], models.tokenizer("tiny-vit")))
    cfg = TrainConfig(epochs=3, batch_size=8, lr=3e-3, select_best=True)
    trained = copy.deepcopy(model)
    log = train(trained, images, np.arange(16), bank, cfg, torch.device("cpu"), pre.mean, pre.std, val=val)
    assert len(log.val_loss) == 3 and log.best_epoch == int(np.argmin(log.val_loss)) + 1
    # the kept weights give the best validation loss again
    from open_clip.loss import ClipLoss

    from train_min.train import validation_loss
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    again = validation_loss(trained, images, val, cfg, torch.device("cpu"), mean, std, ClipLoss())
    assert again == pytest.approx(min(log.val_loss), rel=1e-5)


def test_learning_rates_per_part() -> None:
    model, images, bank, pre = _tiny_data()
    loaded = {n for n, _ in model.named_parameters() if n.startswith("visual.")}
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-3, lr_image=1e-5, lr_text=2e-5, lr_new=1e-4)
    log = train(model, images, np.arange(16), bank, cfg, torch.device("cpu"), pre.mean, pre.std, loaded=loaded)
    # the text tower was not loaded: it is new, as is the logit scale
    assert log.lr == {"image": 1e-5, "image (no decay)": 1e-5, "new": 1e-4, "new (no decay)": 1e-4}
