"""Models: same seed same weights, local checkpoints, fine-tuning modes, a local BERT text tower."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.train_min.conftest import run_cli
from train_min import models


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_same_seed_gives_the_same_initial_weights() -> None:
    assert _same(models.create("tiny", None, 3), models.create("tiny", None, 3))
    assert not _same(models.create("tiny", None, 3), models.create("tiny", None, 4))


def test_a_local_checkpoint_replaces_the_seeded_weights(tmp_path: Path) -> None:
    source = models.create("tiny", None, 5)
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": source.state_dict()}, path)
    assert _same(models.create("tiny", path, 0), source)
    assert _same(models.create(models.resolve("tiny", str(path), models.TextTower("clip"), tmp_path), None, 1), source)
    other = tmp_path / "vit.pt"
    torch.save(models.create("tiny-vit", None, 0).state_dict(), other)
    with pytest.raises(models.ModelError, match="does not fit model 'tiny'"):
        models.create("tiny", other, 0)


def _trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["tiny", "tiny-vit"])
def test_fine_tuning_modes_freeze_what_they_say(name: str) -> None:
    full = models.create(name, None, 0)
    counts = models.apply_finetune(full, "full", 2, 1)
    assert counts["trainable"] == counts["total"]

    frozen = models.create(name, None, 0)
    models.apply_finetune(frozen, "frozen-image", 2, 1)
    assert _trainable(frozen.visual) == 0
    assert _trainable(frozen) == _trainable(full) - _trainable(full.visual)

    partial = models.create(name, None, 0)
    models.apply_finetune(partial, "partial", 1, 1)
    visual = dict(partial.visual.named_parameters())
    last = "attnpool" if name == "tiny" else "proj"
    assert all(p.requires_grad == n.startswith(last) for n, p in visual.items())
    text = {n: p.requires_grad for n, p in partial.named_parameters() if not n.startswith("visual")}
    assert not text["token_embedding.weight"]
    assert not any(v for n, v in text.items() if n.startswith("transformer.resblocks.0."))
    assert all(v for n, v in text.items() if n.startswith(("transformer.resblocks.1.", "ln_final", "text_projection")))


def test_a_bert_text_tower_from_a_local_folder(tiny_bert: Path, tmp_path: Path) -> None:
    tower = models.parse_text_tower(f"hf:{tiny_bert}")
    name = models.resolve_config("tiny", tower, tmp_path)
    assert json.loads((tmp_path / f"{name}.json").read_text())["text_cfg"]["hf_model_name"] == str(tiny_bert)
    model = models.create(name, None, 0)
    assert type(model.text).__name__ == "HFTextEncoder"
    tokens = models.tokenizer(name)(["breast ultrasound showing a benign lesion."])
    assert model.encode_text(tokens).shape == (1, 64)
    models.apply_finetune(model, "partial", 1, 1)
    text = {n: p.requires_grad for n, p in model.text.named_parameters()}
    assert not text["transformer.embeddings.word_embeddings.weight"]
    assert not any(v for n, v in text.items() if ".layer.0." in n)
    assert all(v for n, v in text.items() if ".layer.1." in n or n.startswith("proj"))


@pytest.mark.slow
def test_a_run_with_the_bert_tower_and_partial_fine_tuning(demo_build: Path, tiny_bert: Path, tmp_path: Path) -> None:
    code = run_cli("--data", str(demo_build), "--text-tower", f"hf:{tiny_bert}", "--finetune", "partial",
                   "--strategies", "template_only", "--epochs", "1", "--eval-sets", "test", "--device", "cpu",
                   "--save-checkpoints", "--out", str(tmp_path))
    assert code == 0
    result = json.loads((tmp_path / "summary.json").read_text())
    assert result["config"]["text_towers"] == ["hf:tiny-bert"] and result["config"]["finetune"] == ["partial"]
    run = json.loads((tmp_path / "run-template_only-hf-tiny-bert-partial-seed0.json").read_text())
    assert 0 < run["parameters"]["trainable"] < run["parameters"]["total"]
    assert run["train"]["steps"] > 0 and run["eval"]["test"]["metrics"]["zs_bal_acc"] is not None
    md = (tmp_path / "summary.md").read_text()
    assert "Spearman rank correlation across strategies is undefined here: 1 strategy, it needs 3 or more." in md
    # the saved model loads back as a --pretrained checkpoint of the same configuration
    saved = tmp_path / "checkpoints" / "template_only-hf-tiny-bert-partial-seed0.pt"
    name = result["config"]["arms"]["hf:tiny-bert"]["open_clip_config"]
    assert models.resolve_config("tiny", models.parse_text_tower(f"hf:{tiny_bert}"), tmp_path / "model_configs") == name
    reloaded = models.create(name, saved, 1)
    assert torch.equal(reloaded.text.proj[0].weight, torch.load(saved)["state_dict"]["text.proj.0.weight"])


def test_mixed_precision_training_lowers_the_loss() -> None:
    """12 epochs over 8 pairs under autocast (bf16 on the CPU, as ``--precision amp`` runs): the loss falls."""
    import numpy as np

    from train_min.train import TextBank, TrainConfig, train

    model = models.create("tiny-vit", None, 0)
    size, mean, std = models.preprocess(model)
    images = np.random.default_rng(0).integers(0, 256, size=(8, 3, size, size), dtype=np.uint8)
    words = ["breast", "thyroid", "liver", "lung", "benign", "malignant", "normal", "covid"]
    bank = TextBank(
        [[f"{words[i]} {words[(i * 3) % 8]} ultrasound {i}"] for i in range(8)], models.tokenizer("tiny-vit")
    )
    cfg = TrainConfig(epochs=12, batch_size=8, lr=3e-3, precision="amp")
    log = train(model, images, np.arange(8), bank, cfg, torch.device("cpu"), mean, std)
    assert log.steps == 12 and log.loss_batch == 8
    assert log.epoch_loss[-1] < 0.75 * log.epoch_loss[0]


def test_every_strategy_trains_from_the_same_weights_in_the_same_order() -> None:
    """Two caption sets, one seed: the same batches of the same rows; another seed: another order."""
    import copy

    import numpy as np

    from train_min.train import TextBank, TrainConfig, train

    initial = models.create("tiny-vit", None, 0)
    size, mean, std = models.preprocess(initial)
    images = np.random.default_rng(0).integers(0, 256, size=(24, 3, size, size), dtype=np.uint8)
    tokenize = models.tokenizer("tiny-vit")
    banks = [TextBank([[f"{word} {i}"] for i in range(24)], tokenize) for word in ("breast", "lung")]
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, seed=3)
    logs = [train(copy.deepcopy(initial), images, np.arange(24), bank, cfg, torch.device("cpu"), mean, std)
            for bank in banks]
    assert logs[0].order == logs[1].order and logs[0].first_loss != logs[1].first_loss
    other = TrainConfig(epochs=2, batch_size=8, lr=1e-3, seed=4)
    assert train(copy.deepcopy(initial), images, np.arange(24), banks[0], other, torch.device("cpu"), mean,
                 std).order != logs[0].order


def test_a_small_bert_for_the_demo_from_a_builds_words(demo_build: Path, tmp_path: Path) -> None:
    from train_min import tiny_bert

    assert tiny_bert.main(["--data", str(demo_build), "--out", str(tmp_path / "bert")]) == 0
    tower = models.parse_text_tower(f"hf:{tmp_path / 'bert'}")
    resolved = models.resolve("tiny-vit", None, tower, tmp_path / "configs")
    tokenize = models.tokenizer(resolved)
    tokens = tokenize(["Breast ultrasound showing a benign lesion.", "a sonographic study that demonstrates it"])
    unknown = tokenize.tokenizer.convert_tokens_to_ids("[UNK]")
    assert tokens.shape[0] == 2 and not (tokens == unknown).any()
    assert models.create(resolved, None, 0).encode_text(tokens).shape == (2, 64)
