"""Fixtures for train_min: demo builds per session, a tiny BERT text tower, an offline Hugging Face cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from train_min import run as run_module

REPO = Path(__file__).resolve().parents[2]

# Tiny model, CPU defaults; a few epochs are enough to beat the untrained model with margin.
TRAIN_ARGS = ["--model", "tiny", "--device", "cpu", "--threads", "auto"]


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo recipe, as `echocaptions build --recipe demo` makes it (309 rows), built once."""
    from echocaptions.pipeline import build
    from echocaptions.recipe import load_recipe

    root = tmp_path_factory.mktemp("train_min_demo")
    recipe = load_recipe("demo", data_root=root / "phantom", out=root / "build")
    return build(recipe, workers=2, quiet=True).out


@pytest.fixture(scope="session")
def study_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo phantom split as the study splits it (train_min/recipes/study-demo.yaml): DDTI and POCUS
    train and test, BUSI and AUL held out as eval_busi and eval_aul (36 rows each)."""
    from echocaptions.pipeline import build
    from echocaptions.recipe import load_recipe

    root = tmp_path_factory.mktemp("train_min_study")
    recipe = load_recipe(REPO / "train_min" / "recipes" / "study-demo.yaml", data_root=root / "phantom",
                         out=root / "build")
    return build(recipe, workers=2, quiet=True).out


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache under a temporary HF_HOME, offline: what is not in it cannot be fetched.

    huggingface_hub reads its cache folder and offline flag into constants at import; both are set
    there too, so this process (transformers and open_clip included) sees the same cache as a child
    process started with the environment.
    """
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def run_cli(*args: str) -> int:
    """``python train_min/run.py ARGS`` in this process (torch's thread count restored afterwards)."""
    threads = torch.get_num_threads()
    try:
        return run_module.main([*args])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _idle_core_threads() -> Iterator[None]:
    """Train on the idle cores only, as run.py does: spinning threads on busy cores are slower."""
    threads = torch.get_num_threads()
    run_module.set_threads("auto")
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer BERT with a WordPiece vocabulary of the demo's words, saved like a hub folder."""
    import transformers

    folder = tmp_path_factory.mktemp("bert") / "tiny-bert"
    folder.mkdir()
    words = " ".join([
        "breast thyroid liver lung ultrasound sonogram benign malignant normal lesion nodule mass tissue",
        "showing of the a with and on no consistent covid - 19 pneumonia viral bacterial focal b lines",
        "pleural line irregular smooth solid cystic margins ti rads bi echogenicity parenchymal",
    ]).split(" ")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", ":", ";", "(", ")", *sorted(set(words))]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    transformers.BertTokenizer(str(vocab_file)).save_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=len(dict.fromkeys(vocab)), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(folder)
    return folder
