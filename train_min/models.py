"""open_clip models for the comparison: configs, text towers, checkpoints and fine-tuning modes.

Small configs live in ``train_min/configs/*.json`` and are registered with
open_clip beside its own names (``ViT-B-16``...). A Hugging Face BERT-family
text tower is read from a local folder only: the model config is derived from
the named one with its ``text_cfg`` pointing at that folder, written beside the
results, and registered, so the run is reproducible from its outputs. Nothing
is fetched from a hub.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
FINETUNE_MODES = ("full", "partial", "frozen-image")
HF_PREFIX = "hf:"


class ModelError(ValueError):
    """A model, text tower or checkpoint that cannot be used; names what is missing and what exists."""


def register_configs() -> list[str]:
    """Register this package's configs with open_clip and return their names."""
    import open_clip

    names = []
    for path in sorted(CONFIG_DIR.glob("*.json")):
        if path.stem not in open_clip.list_models():
            open_clip.add_model_config(path)
        names.append(path.stem)
    return names


def check_model_name(name: str) -> None:
    import open_clip

    ours = register_configs()
    known = open_clip.list_models()
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    raise ModelError(
        f"model config {name!r} is not known to open_clip. Configs of train_min: {', '.join(ours)}; "
        f"closest open_clip names: {', '.join(close) or 'none'} "
        f"({len(known)} in all, listed by open_clip.list_models())"
    )


@dataclass(frozen=True)
class TextTower:
    """``clip`` (open_clip's own transformer) or a Hugging Face model in a local folder."""

    kind: str
    folder: Path | None = None

    @property
    def label(self) -> str:
        return "clip" if self.folder is None else f"hf:{self.folder.name}"


def parse_text_tower(spec: str) -> TextTower:
    """``clip`` or ``hf:LOCAL_DIR``; the folder must hold a model config, weights and a tokenizer."""
    if spec == "clip":
        return TextTower("clip")
    if not spec.startswith(HF_PREFIX):
        raise ModelError(f"text tower {spec!r} is neither 'clip' nor 'hf:LOCAL_DIR'")
    folder = Path(spec[len(HF_PREFIX):]).expanduser().resolve()
    if not folder.is_dir():
        parent = folder.parent
        near = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        raise ModelError(
            f"text tower folder {folder} does not exist (folders in {parent}: {near or 'none'}); "
            "save one with transformers' save_pretrained, nothing is downloaded"
        )
    files = sorted(p.name for p in folder.iterdir())
    weights = [f for f in files if f.endswith((".safetensors", ".bin"))]
    tokenizer = [f for f in files if f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json")]
    missing = [
        what
        for what, ok in (("config.json", "config.json" in files), ("weights", weights), ("tokenizer", tokenizer))
        if not ok
    ]
    if missing:
        raise ModelError(f"text tower folder {folder} lacks {', '.join(missing)}; it has: {files}")
    return TextTower("hf", folder)


def check_checkpoint(path: str | None) -> Path | None:
    """A local checkpoint file, or a clear error listing the checkpoints beside it."""
    if path is None:
        return None
    file = Path(path).expanduser()
    if file.is_file():
        return file
    parent = file.parent
    near = sorted(p.name for p in parent.iterdir() if p.suffix in CHECKPOINT_SUFFIXES) if parent.is_dir() else []
    where = f"checkpoints in {parent}: {near or 'none'}" if parent.is_dir() else f"folder {parent} does not exist"
    raise ModelError(f"pretrained checkpoint {file} not found ({where}); nothing is fetched from a hub")


def _hf_context_length(folder: Path, wanted: int) -> int:
    config = json.loads((folder / "config.json").read_text())
    return min(wanted, int(config.get("max_position_embeddings", wanted)))


def resolve_config(model: str, tower: TextTower, config_dir: Path, context_length: int = 128) -> str:
    """The open_clip config name to create: ``model`` itself, or one derived for an HF tower."""
    import open_clip

    check_model_name(model)
    if tower.folder is None:
        return model
    cfg: dict[str, Any] = open_clip.get_model_config(model)
    cfg["text_cfg"] = {
        "hf_model_name": str(tower.folder),
        "hf_tokenizer_name": str(tower.folder),
        "hf_proj_type": "mlp",
        "hf_pooler_type": "mean_pooler",
        "context_length": _hf_context_length(tower.folder, context_length),
    }
    cfg.pop("custom_text", None)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{model}-hf-{tower.folder.name}")
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / f"{name}.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # every process of a distributed run writes it
    tmp.write_text(json.dumps(cfg, indent=2) + "\n")
    os.replace(tmp, path)
    open_clip.add_model_config(path)
    return name


def create(name: str, checkpoint: Path | None, seed: int) -> nn.Module:
    """A model with weights drawn from ``seed`` (then a checkpoint, if any), in fp32 on the CPU."""
    import open_clip

    register_configs()
    torch.manual_seed(seed)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip logs "initialized randomly" on purpose-random models
    try:
        return open_clip.create_model(name, pretrained=str(checkpoint) if checkpoint else None)
    except RuntimeError as err:
        if checkpoint is not None and ("state_dict" in str(err) or "size mismatch" in str(err)):
            raise ModelError(f"checkpoint {checkpoint} does not fit model {name!r}: {err}") from None
        raise
    finally:
        root.setLevel(level)


def tokenizer(name: str) -> Any:
    """open_clip's tokenizer for the config: its BPE for CLIP towers, the folder's for HF ones."""
    import open_clip

    return open_clip.get_tokenizer(name)


def preprocess(model: nn.Module) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """Input size and normalisation the model was configured with."""
    from open_clip.model import get_model_preprocess_cfg

    cfg = get_model_preprocess_cfg(model)
    size = cfg["size"]
    size = size if isinstance(size, int) else int(size[0])
    return size, tuple(cfg["mean"]), tuple(cfg["std"])


def _lock_hf_text(text: nn.Module, unlocked_layers: int) -> None:
    """Freeze an HF text tower except its last encoder layers; pooler and projection train.

    open_clip's own lock has no layer table for BERT, so this finds
    ``encoder.layer`` the way BERT-family models name it.
    """
    transformer = text.transformer
    for param in transformer.parameters():
        param.requires_grad = False
    encoder = getattr(transformer, "encoder", transformer)
    layers = getattr(encoder, "layer", None)
    if layers is None:
        raise ModelError(f"cannot find encoder layers in {type(transformer).__name__} to unlock")
    for layer in list(layers)[len(layers) - unlocked_layers:] if unlocked_layers else []:
        for param in layer.parameters():
            param.requires_grad = True


RESNET_GROUPS = ("stem", "layer1", "layer2", "layer3", "layer4", "attnpool")


def _lock_image(visual: nn.Module, unlocked_groups: int) -> None:
    """Freeze the image tower except its last groups; frozen batch norms stop updating their statistics.

    Vision transformers use open_clip's own grouping. open_clip cannot lock
    part of a ResNet, so its groups here are the stem, the four stages and the
    attention pool.
    """
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.utils import freeze_batch_norm_2d

    if not isinstance(visual, ModifiedResNet):
        visual.lock(unlocked_groups=unlocked_groups)
        return
    for param in visual.parameters():
        param.requires_grad = False
    keep = set(RESNET_GROUPS[len(RESNET_GROUPS) - unlocked_groups:]) if unlocked_groups else set()
    stem = {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3"}
    frozen_bn = set()
    for name, module in visual.named_modules():
        group = "stem" if name.split(".")[0] in stem else name.split(".")[0]
        if group in keep:
            for param in module.parameters(recurse=False):
                param.requires_grad = True
        elif isinstance(module, nn.BatchNorm2d):
            frozen_bn.add(name)
    freeze_batch_norm_2d(visual, frozen_bn)


def apply_finetune(model: nn.Module, mode: str, image_groups: int, text_layers: int) -> dict[str, int]:
    """Freeze towers for a fine-tuning mode; returns trainable and total parameter counts.

    ``partial``: the image tower keeps its last ``image_groups`` groups (for a
    ViT as open_clip counts them, the last being the projection; for a ResNet
    the stages, the last being the attention pool), the text tower its last
    ``text_layers`` transformer layers plus final norm and projection.
    ``frozen-image``: the image tower is fixed (LiT-style), the text tower trains.
    """
    from open_clip.transformer import lock_text_tower

    if mode not in FINETUNE_MODES:
        raise ModelError(f"fine-tuning mode {mode!r} is not one of {FINETUNE_MODES}")
    if mode in ("partial", "frozen-image"):
        _lock_image(model.visual, image_groups if mode == "partial" else 0)
    if mode == "partial":
        text = getattr(model, "text", None)
        if text is not None and hasattr(text, "transformer") and hasattr(text, "config"):
            _lock_hf_text(text, text_layers)
        else:
            lock_text_tower(model, text_layers + 1)
    counts = {"total": 0, "trainable": 0}
    for param in model.parameters():
        counts["total"] += param.numel()
        counts["trainable"] += param.numel() if param.requires_grad else 0
    return counts
