"""open_clip models for the comparison: where weights come from, text towers, fine-tuning modes.

A model is named the way open_clip names it:

- an open_clip config (``ViT-B-16``, or ``tiny`` / ``tiny-vit`` from
  ``train_min/configs``) with ``--pretrained`` an open_clip tag (``openai``,
  ``laion2b_s34b_b88k``...) or a local checkpoint file;
- ``hf-hub:ORG/NAME``: ``open_clip_config.json`` and weights on the Hugging
  Face Hub (BiomedCLIP's format);
- ``local-dir:PATH``: the same files in a local folder.

Tags and hub names go through open_clip and huggingface_hub as usual: the
cache is honoured and ``HF_HUB_OFFLINE=1`` is respected. Everything is
resolved to files before a model is created, so a missing file, an unknown
tag or a hub name that is offline and not cached is an error that names what
exists, not a silently random model (open_clip itself only logs a warning
when a hub repository has no weights).

The resolved architecture is written beside the results
(``OUT/model_configs``) and registered with open_clip, so the run can be
repeated from its outputs. A text tower ``hf:NAME`` (a hub name such as
``emilyalsentzer/Bio_ClinicalBERT`` or a local folder) replaces the CLIP text
transformer; the image tower then starts from the CLIP weights
(``--pretrained-image``, by default the model's own), so CLIP against BERT
compares text towers.

OpenAI weights were trained with QuickGELU. open_clip only warns when they
are loaded into a config with nn.GELU; here the config is switched to
QuickGELU (as the ``-quickgelu`` names do) and the switch is reported.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
FINETUNE_MODES = ("full", "partial", "frozen-image")
HF_PREFIX = "hf:"
HUB_PREFIX = "hf-hub:"
LOCAL_PREFIX = "local-dir:"
# open_clip's preferred weight files in a hub repository or local folder, best first
WEIGHT_FILES = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)
# Preprocessing of a model without weights (trained from scratch here): the whole image padded to a
# square on black, which keeps the edges of an ultrasound sector (open_clip's "longest" resize mode).
SCRATCH_PREPROCESS = {"resize_mode": "longest", "interpolation": "bicubic", "fill_color": 0}


class ModelError(ValueError):
    """A model, text tower or checkpoint that cannot be used; names what is missing, what exists and the fix."""


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
        f"({len(known)} in all, listed by open_clip.list_models()); a model on the Hugging Face Hub "
        f"is named hf-hub:ORG/NAME, one in a local folder local-dir:PATH"
    )


# ---------------------------------------------------------------- the Hugging Face cache


def _cached_repos() -> list[str]:
    """Repository ids in the Hugging Face cache (for error messages)."""
    try:
        from huggingface_hub import scan_cache_dir

        return sorted(r.repo_id for r in scan_cache_dir().repos)
    except Exception:  # no cache folder yet
        return []


def _hub_error(repo: str, filename: str, err: Exception) -> ModelError:
    from huggingface_hub import constants

    offline = constants.is_offline_mode()
    cached = _cached_repos()
    where = f"the Hugging Face cache {constants.HF_HUB_CACHE}"
    if offline:
        why = (f"{repo} has no {filename} in {where}, and HF_HUB_OFFLINE=1 forbids downloading it. "
               f"Fix: run once with network access (unset HF_HUB_OFFLINE), or `hf download {repo}` on a "
               f"machine that has it and copy the cache (HF_HOME), or pass a local folder")
    else:
        why = (f"{filename} of {repo} could not be fetched ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
               f"Fix: check the name (https://huggingface.co/{repo}), your network and token, or pass a "
               f"local folder")
    return ModelError(f"{why}. Repositories in the cache: {', '.join(cached) or 'none'}")


def hub_file(repo: str, filename: str) -> Path:
    """A file of a hub repository through huggingface_hub (cache first; offline mode respected)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as err:
        raise _hub_error(repo, filename, err) from None


def _hub_weights(repo: str) -> Path:
    """The weights of an open_clip hub repository, as open_clip would pick them."""
    from huggingface_hub import constants, hf_hub_download

    errors = []
    for name in WEIGHT_FILES[:4]:
        try:
            return Path(hf_hub_download(repo_id=repo, filename=name))
        except Exception as err:  # try the next name
            errors.append(err)
    err = errors[-1]
    if constants.is_offline_mode():
        raise _hub_error(repo, " or ".join(WEIGHT_FILES[:3]), err) from None
    raise ModelError(f"hub repository {repo} has none of {', '.join(WEIGHT_FILES[:4])} "
                     f"({type(err).__name__}); open_clip would create it with random weights") from None


# ---------------------------------------------------------------- text towers


@dataclass(frozen=True)
class TextTower:
    """``clip`` (the model's own text tower) or a Hugging Face model: a hub name or a local folder."""

    kind: str
    name: str | None = None  # hub id or folder, as given
    folder: Path | None = None  # set when local

    @property
    def label(self) -> str:
        if self.kind == "clip":
            return "clip"
        return f"hf:{self.folder.name}" if self.folder is not None else f"hf:{self.name}"

    @property
    def source(self) -> str:
        """What transformers loads: the folder path or the hub id."""
        return str(self.folder) if self.folder is not None else str(self.name)


def _looks_local(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or Path(spec).expanduser().exists() or spec.count("/") != 1


def parse_text_tower(spec: str) -> TextTower:
    """``clip`` or ``hf:NAME``: a hub name (``ORG/NAME``) or a local folder with config, weights and tokenizer."""
    if spec == "clip":
        return TextTower("clip")
    if not spec.startswith(HF_PREFIX) or not spec[len(HF_PREFIX):]:
        raise ModelError(f"text tower {spec!r} is neither 'clip' nor 'hf:NAME' (a hub name such as "
                         f"hf:emilyalsentzer/Bio_ClinicalBERT, or hf:LOCAL_DIR)")
    name = spec[len(HF_PREFIX):]
    if not _looks_local(name):
        return _hub_text_tower(name)
    folder = Path(name).expanduser().resolve()
    if not folder.is_dir():
        parent = folder.parent
        near = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        raise ModelError(
            f"text tower folder {folder} does not exist (folders in {parent}: {near or 'none'}); "
            "save one with transformers' save_pretrained (model and tokenizer), or name a hub model "
            "as hf:ORG/NAME"
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
        fix = " Fix: tokenizer.save_pretrained(folder) with the tokenizer the model was trained with." \
            if missing == ["tokenizer"] else ""
        raise ModelError(f"text tower folder {folder} lacks {', '.join(missing)}; it has: {files}.{fix}")
    return TextTower("hf", name, folder)


def _hub_text_tower(repo: str) -> TextTower:
    """A hub text model: its config, weights and tokenizer must be reachable (cached or downloadable)."""
    hub_file(repo, "config.json")
    from huggingface_hub import constants, hf_hub_download

    weights = None
    for name in ("model.safetensors", "pytorch_model.bin"):
        try:
            weights = hf_hub_download(repo_id=repo, filename=name)
            break
        except Exception as err:
            last = err
    if weights is None:
        raise _hub_error(repo, "model.safetensors or pytorch_model.bin", last)
    found = []
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        try:
            hf_hub_download(repo_id=repo, filename=name)
            found.append(name)
        except Exception:
            continue
    if not found:
        offline = " (offline: only cached files count)" if constants.is_offline_mode() else ""
        raise ModelError(f"text tower hf:{repo} has no tokenizer (tokenizer.json, vocab.txt or "
                         f"tokenizer_config.json){offline}. Fix: name a model that ships its tokenizer, or save "
                         f"model and tokenizer into a folder and pass hf:FOLDER")
    return TextTower("hf", repo, None)


def _hf_context_length(tower: TextTower, wanted: int) -> int:
    path = tower.folder / "config.json" if tower.folder is not None else hub_file(str(tower.name), "config.json")
    config = json.loads(Path(path).read_text())
    return min(wanted, int(config.get("max_position_embeddings", wanted)))


# ---------------------------------------------------------------- model sources


@dataclass
class Resolved:
    """Everything needed to create a model, checked: config, weights files, preprocessing."""

    label: str  # how tables name it
    name: str  # the open_clip config name to create (registered)
    cfg: dict[str, Any]
    preprocess: dict[str, Any]  # open_clip preprocess cfg: size, mean, std, interpolation, resize_mode
    checkpoint: Path | None = None  # full model weights
    image_checkpoint: Path | None = None  # image-tower weights only (a CLIP checkpoint's visual.*)
    tower: TextTower = field(default_factory=lambda: TextTower("clip"))
    weights: str = "random"  # where the weights come from, in words
    notes: list[str] = field(default_factory=list)

    @property
    def pretrained_towers(self) -> set[str]:
        """Towers that start from trained weights."""
        towers = set()
        if self.checkpoint is not None:
            towers |= {"image", "text"}
        if self.image_checkpoint is not None:
            towers.add("image")
        if self.tower.kind == "hf" and self.checkpoint is None:
            towers.add("text")  # transformers' from_pretrained
        return towers

    @property
    def pretrained(self) -> bool:
        return "image" in self.pretrained_towers


def _schema(model: str) -> tuple[str | None, str]:
    for prefix, schema in ((HUB_PREFIX, "hf-hub"), (LOCAL_PREFIX, "local-dir")):
        if model.startswith(prefix):
            ident = model[len(prefix):]
            if not ident:
                raise ModelError(f"model {model!r} names nothing after {prefix}")
            return schema, ident
    return None, model


def _local_dir(path: str) -> tuple[dict[str, Any], dict[str, Any], Path]:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelError(f"local-dir:{path}: folder {folder} does not exist")
    files = sorted(p.name for p in folder.iterdir())
    config = folder / "open_clip_config.json"
    if not config.is_file():
        raise ModelError(f"local-dir:{path} has no open_clip_config.json (it has: {files}); save a model with "
                         "open_clip's push_to_hf_hub/save format (open_clip_config.json with model_cfg, weights)")
    data = json.loads(config.read_text())
    if "model_cfg" not in data:
        raise ModelError(f"{config} has no 'model_cfg' key; keys: {sorted(data)}")
    weights = next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)
    if weights is None:
        raise ModelError(f"local-dir:{path} has no weights ({', '.join(WEIGHT_FILES[:3])}...); it has: {files}")
    return data["model_cfg"], data.get("preprocess_cfg", {}), weights


def _hub(repo: str) -> tuple[dict[str, Any], dict[str, Any], Path]:
    data = json.loads(hub_file(repo, "open_clip_config.json").read_text())
    if "model_cfg" not in data:
        raise ModelError(f"open_clip_config.json of {repo} has no 'model_cfg' key; keys: {sorted(data)}. Is it "
                         "an open_clip model? A text model is a text tower: --text-tower hf:" + repo)
    return data["model_cfg"], data.get("preprocess_cfg", {}), _hub_weights(repo)


def _is_openai_file(path: Path) -> bool:
    """OpenAI's checkpoints: TorchScript archives, or files (or hub repositories in the cache) named after
    an OpenAI source, such as ``ViT-B-16.pt`` from openaipublic or ``timm/vit_base_patch16_clip_224.openai``."""
    from open_clip.pretrained import _PRETRAINED

    names = [path.name.lower(), *[p.lower() for p in path.parts if p.startswith("models--")]]
    openai_files = {cfg.get("url", "").rsplit("/", 1)[-1].lower() for tags in _PRETRAINED.values()
                    for tag, cfg in tags.items() if tag == "openai"} - {""}
    if any("openai" in n for n in names) or path.name.lower() in openai_files:
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.split("/", 1)[-1].startswith("code/") for n in archive.namelist()[:200])
    except (zipfile.BadZipFile, OSError):
        return False


def _pretrained(name: str, pretrained: str) -> tuple[Path, dict[str, Any], bool]:
    """A tag of open_clip's registry (fetched through it) or a local file: path, preprocess cfg, QuickGELU."""
    from open_clip.pretrained import (
        download_pretrained,
        get_pretrained_cfg,
        list_pretrained_tags_by_model,
    )

    tag_cfg = get_pretrained_cfg(name, pretrained)
    if tag_cfg:
        hub = tag_cfg.get("hf_hub", "")
        try:
            with _quiet():
                path = download_pretrained(tag_cfg)
        except Exception as err:
            repo = hub.rstrip("/").rsplit("/", 1)[0] if hub.count("/") > 1 else hub.rstrip("/")
            raise _hub_error(repo or name, hub.rsplit("/", 1)[-1] or "open_clip_pytorch_model.bin", err) from None
        if not path:
            raise ModelError(f"open_clip's tag {pretrained!r} of {name} names no file or hub repository")
        keys = ("mean", "std", "interpolation", "resize_mode")
        return Path(path), {k: tag_cfg[k] for k in keys if k in tag_cfg}, bool(tag_cfg.get("quick_gelu", False))
    file = Path(pretrained).expanduser()
    if file.is_file():
        return file, saved_preprocess(file), _is_openai_file(file)
    tags = list_pretrained_tags_by_model(name)
    parent = file.parent
    near = sorted(p.name for p in parent.iterdir() if p.suffix in CHECKPOINT_SUFFIXES) if parent.is_dir() else []
    looks_like_file = any(c in pretrained for c in "/\\") or file.suffix in CHECKPOINT_SUFFIXES
    where = (f"checkpoints in {parent}: {near or 'none'}" if parent.is_dir() else f"folder {parent} does not exist") \
        if looks_like_file else f"open_clip's tags for {name}: {', '.join(tags) or 'none'}"
    raise ModelError(f"pretrained {pretrained!r} of {name} is neither an open_clip tag nor a file "
                     f"({where}). open_clip.list_pretrained() lists every model:tag")


def saved_preprocess(path: Path) -> dict[str, Any]:
    """The preprocess cfg a checkpoint of this package carries (``preprocess_cfg``), else none."""
    if path.suffix not in (".pt", ".pth", ".ckpt"):
        return {}
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # TorchScript archives, other formats: open_clip's defaults apply
        return {}
    cfg = data.get("preprocess_cfg") if isinstance(data, dict) else None
    keys = ("mean", "std", "interpolation", "resize_mode", "fill_color")
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in keys} \
        if isinstance(cfg, dict) else {}


@contextmanager
def _quiet() -> Iterator[None]:
    """open_clip logs and warns at length about expected events (random init, a tag's QuickGELU)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="QuickGELU mismatch")
            yield
    finally:
        root.setLevel(level)


def _fix_quick_gelu(cfg: dict[str, Any], wanted: bool, label: str, what: str, notes: list[str]) -> None:
    if bool(cfg.get("quick_gelu", False)) == wanted:
        return
    cfg["quick_gelu"] = wanted
    act = "QuickGELU" if wanted else "nn.GELU"
    notes.append(f"{label}: {what} {'were trained with QuickGELU' if wanted else 'use nn.GELU'}; the config "
                 f"said otherwise, so the model is created with {act} (as the matching "
                 f"{'-quickgelu ' if wanted else ''}config does)")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def resolve(model: str, pretrained: str | None, tower: TextTower, config_dir: Path,
            pretrained_image: str | None = None, label: str | None = None, context_length: int = 128) -> Resolved:
    """Resolve a model to its config, weights files and preprocessing, without creating it.

    ``pretrained`` (a tag or a file) applies to open_clip names; ``hf-hub:`` and
    ``local-dir:`` bring their own weights. With an HF text tower the image
    tower starts from ``pretrained_image`` (a tag of ``model`` or a file; by
    default the model's own weights) and the text tower from the HF model.
    """
    import open_clip

    register_configs()
    schema, ident = _schema(model)
    notes: list[str] = []
    preprocess: dict[str, Any] = {}
    checkpoint: Path | None = None
    openai_weights = False
    if schema in ("hf-hub", "local-dir") and pretrained:
        raise ModelError(f"--pretrained {pretrained!r} with {model}: a {schema} model brings its own weights; "
                         "drop --pretrained")
    if schema == "hf-hub":
        cfg, preprocess, checkpoint = _hub(ident)
        weights = f"{model} ({checkpoint.name})"
        openai_weights = "openai" in ident.lower()
    elif schema == "local-dir":
        cfg, preprocess, checkpoint = _local_dir(ident)
        weights = f"{model} ({checkpoint.name})"
        openai_weights = _is_openai_file(checkpoint) or "openai" in Path(ident).name.lower()
    else:
        check_model_name(model)
        cfg = open_clip.get_model_config(model)
        weights = "random"
        if pretrained:
            checkpoint, preprocess, openai_weights = _pretrained(model, pretrained)
            weights = f"{model} {pretrained}" if not Path(pretrained).expanduser().is_file() else str(checkpoint)
    cfg = json.loads(json.dumps(cfg))
    if openai_weights and "timm_model_name" not in cfg.get("vision_cfg", {}):
        _fix_quick_gelu(cfg, True, label or model, f"OpenAI weights ({pretrained or model})", notes)
    if checkpoint is None and schema is None:
        preprocess = {**preprocess, **SCRATCH_PREPROCESS}
    image_checkpoint = None
    if tower.kind == "hf":
        if pretrained_image:
            if schema is not None:
                raise ModelError("--pretrained-image takes a tag or file of an open_clip config; "
                                 f"{model} brings its own image weights")
            image_checkpoint, image_pp, image_openai = _pretrained(model, pretrained_image)
            preprocess = {k: v for k, v in preprocess.items() if k not in SCRATCH_PREPROCESS}
            preprocess = {**preprocess, **image_pp}
            if image_openai:
                _fix_quick_gelu(cfg, True, label or model, f"OpenAI image weights ({pretrained_image})", notes)
            weights = f"image: {pretrained_image}; text: {tower.source}"
        else:
            image_checkpoint = checkpoint
            weights = f"image: {weights}; text: {tower.source}" if checkpoint is not None \
                else f"image: random; text: {tower.source}"
        checkpoint = None
        cfg["text_cfg"] = {
            "hf_model_name": tower.source,
            "hf_tokenizer_name": tower.source,
            "hf_proj_type": "mlp",
            "hf_pooler_type": "mean_pooler",
            "context_length": _hf_context_length(tower, context_length),
        }
        cfg.pop("custom_text", None)
    elif pretrained_image:
        raise ModelError("--pretrained-image is for an HF text tower (--text-tower hf:NAME); with the CLIP text "
                         "tower use --pretrained")
    base = _safe(model.replace(HUB_PREFIX, "").replace(LOCAL_PREFIX, "").split("/")[-1])
    name = base if schema is None and tower.kind == "clip" and cfg == open_clip.get_model_config(model) \
        else _safe(f"{base}{'-quickgelu' if cfg.get('quick_gelu') and 'quickgelu' not in base else ''}"
                   f"{'-' + tower.label.replace(':', '-') if tower.kind == 'hf' else ''}")
    if name != base or schema is not None:
        name = f"train_min-{name}"
        config_dir.mkdir(parents=True, exist_ok=True)
        path = config_dir / f"{name}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # every process of a distributed run writes it
        tmp.write_text(json.dumps(cfg, indent=2) + "\n")
        os.replace(tmp, path)
        open_clip.add_model_config(path)
    return Resolved(label=label or model, name=name, cfg=cfg, preprocess=preprocess, checkpoint=checkpoint,
                    image_checkpoint=image_checkpoint, tower=tower, weights=weights, notes=notes)


def resolve_config(model: str, tower: TextTower, config_dir: Path, context_length: int = 128) -> str:
    """The open_clip config name for ``model`` with ``tower`` (random weights)."""
    return resolve(model, None, tower, config_dir, context_length=context_length).name


# ---------------------------------------------------------------- creating models


def _image_state(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """The image-tower part (``visual.*``) of a full CLIP checkpoint, converted as open_clip converts it."""
    from open_clip.convert import convert_state_dict
    from open_clip.factory import load_state_dict

    state = load_state_dict(str(path))
    state = convert_state_dict(model, state)
    visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    if not visual:
        raise ModelError(f"image checkpoint {path} has no visual.* weights; keys start with "
                         f"{sorted({k.split('.')[0] for k in state})}")
    return visual


def _fit_error(source: Path, resolved: Resolved, err: Exception) -> ModelError:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = "; ".join(lines[:4])[:600]
    return ModelError(f"checkpoint {source} does not fit model {resolved.label!r} (config {resolved.name}): "
                      f"{detail}. Fix: name the config the checkpoint was trained with (--model), or the "
                      f"checkpoint of this config")


def create(resolved: Resolved | str, checkpoint: Path | None = None, seed: int = 0) -> nn.Module:
    """The model with weights drawn from ``seed``, then its checkpoint(s); fp32 on the CPU.

    ``create("tiny", None, seed)`` is shorthand for an open_clip config with random weights.
    """
    import open_clip

    if isinstance(resolved, str):
        register_configs()
        check_model_name(resolved)
        resolved = Resolved(label=resolved, name=resolved, cfg=open_clip.get_model_config(resolved),
                            preprocess=dict(SCRATCH_PREPROCESS) if checkpoint is None else {},
                            checkpoint=checkpoint, weights=str(checkpoint) if checkpoint else "random")
    torch.manual_seed(seed)
    with _quiet():
        try:
            model = open_clip.create_model(
                resolved.name, pretrained=str(resolved.checkpoint) if resolved.checkpoint else None,
                force_preprocess_cfg=resolved.preprocess or None,
            )
        except RuntimeError as err:
            if resolved.checkpoint is not None and ("state_dict" in str(err) or "size mismatch" in str(err)):
                raise _fit_error(resolved.checkpoint, resolved, err) from None
            raise
        except OSError as err:  # transformers: a tower it cannot load
            raise ModelError(f"text tower {resolved.tower.source} could not be loaded: {err}") from None
    if resolved.image_checkpoint is not None:
        try:
            model.visual.load_state_dict(_image_state(resolved.image_checkpoint, model), strict=True)
        except RuntimeError as err:
            raise _fit_error(resolved.image_checkpoint, resolved, err) from None
    model.eval()
    return model


def loaded_names(resolved: Resolved, model: nn.Module) -> set[str]:
    """Names of the parameters that came from trained weights (the others are freshly initialised)."""
    names = {n for n, _ in model.named_parameters()}
    if resolved.checkpoint is not None:
        return names
    loaded = set()
    if resolved.image_checkpoint is not None:
        loaded |= {n for n in names if n.startswith("visual.")}
    if resolved.tower.kind == "hf":
        loaded |= {n for n in names if n.startswith("text.transformer.")}
    return loaded


def tokenizer(resolved: Resolved | str) -> Any:
    """open_clip's tokenizer for the config: its BPE for CLIP towers, the HF model's for HF ones."""
    import open_clip

    name = resolved.name if isinstance(resolved, Resolved) else resolved
    with _quiet():
        try:
            return open_clip.get_tokenizer(name)
        except (OSError, ValueError) as err:
            raise ModelError(f"no tokenizer for {name}: {err}. Fix: a text tower must ship its tokenizer "
                             "(tokenizer.save_pretrained into its folder)") from None


@dataclass(frozen=True)
class Preprocess:
    """How a model sees an image: size, normalisation, resize mode and interpolation."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_mode: str = "longest"
    interpolation: str = "bicubic"
    fill_color: int = 0

    def __iter__(self) -> Iterator[Any]:  # size, mean, std = preprocess(model)
        return iter((self.size, self.mean, self.std))


def preprocess(model: nn.Module) -> Preprocess:
    """The preprocessing the model was created with (open_clip's preprocess cfg)."""
    from open_clip.model import get_model_preprocess_cfg

    cfg = get_model_preprocess_cfg(model)
    size = cfg["size"]
    size = size if isinstance(size, int) else int(size[0])
    return Preprocess(size, tuple(cfg["mean"]), tuple(cfg["std"]), cfg.get("resize_mode", "shortest"),
                      cfg.get("interpolation", "bicubic"), int(cfg.get("fill_color", 0)))


def activation(model: nn.Module) -> str:
    """The activation of the first transformer MLP of the image tower (QuickGELU or GELU), for reports."""
    for module in model.visual.modules():
        name = type(module).__name__
        if name in ("QuickGELU", "GELU"):
            return name
    return "n/a"


# ---------------------------------------------------------------- fine-tuning modes


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
