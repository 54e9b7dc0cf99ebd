"""Train one CLIP per caption strategy on an echocaptions build, evaluate, and compare.

    python train_min/run.py --data BUILD [--study STUDY.json|yaml]
        [--strategies a,b,c] [--model tiny|ViT-B-16|hf-hub:ORG/NAME|local-dir:PATH]
        [--pretrained TAG|CKPT] [--text-tower clip,hf:NAME] [--pretrained-image TAG|CKPT]
        [--finetune full,partial,frozen-image] [--seeds 0,1,2] [--baseline NAME=MODEL[@PRETRAINED] ...]
        [--eval-only] [--epochs N] [--lr X] [--eval-sets NAME,...] [--out results/]

    torchrun --nproc-per-node N train_min/run.py ...   # DDP, features gathered for the loss

The grid is strategies x text towers x fine-tuning modes x seeds. Per text
tower and seed the model is created once; every strategy and fine-tuning mode
trains a copy of those weights on the same images in the same order, and the
copy without training is evaluated too (``untrained``: random weights, or the
pretrained model as it is). Baselines (``--baseline``) are evaluated on the same
sets with the same metrics, without training. Everything a run could trip on
(captions, evaluation sets, models, tags, hub names, text towers, checkpoints,
folds) is checked before any training.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import shlex
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from train_min import data, evaluate, models, plots, report
from train_min.train import Dist, TextBank, TrainConfig, train

# Defaults per device, then per model. The small configs train from scratch on a few hundred
# images: small batches, a high learning rate; tiny finishes the demo comparison on two CPU cores.
DEVICE_DEFAULTS = {
    "cpu": {"model": "tiny", "batch_size": 64, "precision": "fp32"},
    "cuda": {"model": "ViT-B-16", "batch_size": 256, "precision": "amp"},
}
MODEL_DEFAULTS = {
    "tiny": {"epochs": 30, "lr": 2e-3, "batch_size": 32},
    "tiny-vit": {"epochs": 20, "lr": 2e-3, "batch_size": 32},
}
OTHER_MODEL_DEFAULTS = {"epochs": 10, "lr": 5e-4}
# Fine-tuning a model whose image tower starts from trained weights: lower learning rates per part
# (towers that were loaded; freshly initialised parameters such as a new text projection learn
# faster), warm-up over the first 10 % of steps, and the epoch with the lowest validation loss kept.
FINETUNE_DEFAULTS = {"epochs": 10, "lr_image": 1e-5, "lr_text": 1e-5, "lr_text_hf": 2e-5, "lr_new": 1e-4,
                     "warmup": 0.1}
STUDY_LISTS = {"strategies", "text_tower", "finetune", "seeds", "eval_sets"}


class UsageError(ValueError):
    """Arguments that do not make a run."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", type=Path, help="JSON or YAML file of options (keys as the long options, lists "
                   "allowed; 'baselines' maps NAME to SPEC); options given on the command line win")
    p.add_argument("--data", type=Path, help="build folder (echocaptions build --out)")
    p.add_argument("--strategies", help="comma-separated caption strategies (default: the distinct ones of the build)")
    p.add_argument("--model", help="open_clip config (tiny, tiny-vit from train_min/configs, ViT-B-16...), "
                   "hf-hub:ORG/NAME or local-dir:PATH; default tiny on the CPU, ViT-B-16 on a GPU")
    p.add_argument("--pretrained", help="open_clip tag of --model (openai, laion2b_s34b_b88k...) or a checkpoint file")
    p.add_argument("--text-tower", default="clip", help="comma-separated: clip, hf:NAME (a hub name such as "
                   "emilyalsentzer/Bio_ClinicalBERT, or a local folder); each is one arm of the grid")
    p.add_argument("--pretrained-image", help="HF text towers: image-tower weights (tag of --model or file); "
                   "default the --pretrained weights, so CLIP and BERT arms share the image tower's start")
    p.add_argument("--finetune", default="full", help="comma-separated: full, partial, frozen-image")
    p.add_argument("--unlocked-image-groups", type=int, default=2,
                   help="partial: image-tower groups left trainable (ViT: open_clip's groups, the last being "
                   "the projection; ResNet: stem, four stages, attention pool)")
    p.add_argument("--unlocked-text-layers", type=int, default=1,
                   help="partial: text-tower layers left trainable (final norm and projection always train)")
    p.add_argument("--baseline", action="append", default=[], metavar="NAME=MODEL[@PRETRAINED]",
                   help="a model evaluated without training, e.g. openai=ViT-B-16@openai, "
                   "biomedclip=hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224, "
                   "mine=tiny@ckpt.pt (repeatable)")
    p.add_argument("--eval-only", action="store_true", help="evaluate --model (and the baselines), train nothing")
    p.add_argument("--epochs", type=int, help="default: 30 for tiny, 20 for tiny-vit, 10 for open_clip configs "
                   "and for fine-tuning")
    p.add_argument("--lr", type=float, help="peak learning rate from scratch (default: 2e-3 for tiny and "
                   "tiny-vit, else 5e-4)")
    p.add_argument("--lr-image", type=float, help="pretrained image tower (default 1e-5)")
    p.add_argument("--lr-text", type=float, help="pretrained text tower (default 1e-5 CLIP, 2e-5 HF)")
    p.add_argument("--lr-new", type=float, help="fresh parameters of a pretrained model (default 1e-4)")
    p.add_argument("--warmup", type=float, default=0.1, help="share of steps with a linear warm-up")
    p.add_argument("--epoch-select", default="auto", choices=("auto", "best", "last"),
                   help="weights kept: best (lowest validation loss), last; auto: best when fine-tuning")
    p.add_argument("--batch-size", type=int, help="global batch, split over processes under torchrun "
                   "(default: 32 for tiny and tiny-vit, else 64 on the CPU, 256 on a GPU)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; results are mean ± std over them")
    p.add_argument("--eval-sets", help="comma-separated: test, test/<dataset>, eval_<source> or a dataset "
                   "name (default: test, each dataset in it and each held-out source)")
    p.add_argument("--folds", type=int, default=5, help="stratified folds of the probes inside held-out sets")
    p.add_argument("--eval-seed", type=int, default=0, help="seed of the evaluation's own draws (folds, few-shot "
                   "examples), the same for every row so that rows are compared on the same draws")
    p.add_argument("--reference", help="strategy the others are compared with by paired bootstrap "
                   "(default: the first)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the test images")
    p.add_argument("--prompts", type=Path, default=evaluate.PROMPTS, help="zero-shot prompt JSON (ZS)")
    p.add_argument("--heldout-prompts", type=Path, default=evaluate.HELDOUT_PROMPTS,
                   help="zero-shot prompts sharing no sentence frame with the caption templates (ZS-H)")
    p.add_argument("--augment", default="crop", choices=("crop", "none"),
                   help="crop: a random resized crop of 80-100 %% of each training image (default)")
    p.add_argument("--resize-mode", default="model", choices=("model", *data.RESIZE_MODES),
                   help="how images are fitted to the input size; model: each model's own (pretrained), "
                   "longest (padded) from scratch")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", choices=("amp", "fp32"), help="default amp on a GPU, fp32 on the CPU")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels too (slower); seeds already fix weights, order and sampling")
    p.add_argument("--threads", default="auto",
                   help="CPU threads for torch; auto: the cores not already busy (load average), at least 1")
    p.add_argument("--cache-dir", type=Path, help="uint8 image cache (default: OUT/cache)")
    p.add_argument("--save-checkpoints", action="store_true", help="write each trained model to OUT/checkpoints")
    p.add_argument("--out", type=Path, default=Path("results"))
    return p


def _load_study(path: Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Options from a study file, as argparse defaults (the command line still wins)."""
    if not path.is_file():
        raise UsageError(f"study file {path} not found")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        else:
            raw = json.loads(text)
    except ValueError as err:
        raise UsageError(f"study file {path} is not valid {path.suffix[1:].upper() or 'JSON'}: {err}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"study file {path} must map option names to values")
    dests = {a.dest: a for a in parser._actions if a.dest not in ("help", "study")}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        dest = key.replace("-", "_")
        if dest in ("baselines", "baseline"):
            value = [f"{k}={v}" for k, v in value.items()] if isinstance(value, dict) else list(value)
            out["baseline"] = value
            continue
        if dest not in dests:
            raise UsageError(f"study file {path}: unknown option {key!r}; known: "
                             f"{', '.join(sorted([*dests, 'baselines']))}")
        if isinstance(value, list):
            if dest not in STUDY_LISTS:
                raise UsageError(f"study file {path}: {key} takes one value, got a list")
            value = ",".join(str(v) for v in value)
        action = dests[dest]
        if action.type is not None and value is not None and not isinstance(value, bool):
            value = action.type(value)
        out[dest] = value
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.study is not None:
        parser.set_defaults(**_load_study(args.study, parser))
        args = parser.parse_args(argv)
    if args.data is None:
        parser.error("--data is required (on the command line or in the study file)")
    return args


def _list(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise UsageError(f"{what} names no value")
    return values


@dataclass
class Arm:
    """One text tower of the grid: its resolved model and training settings."""

    tower: models.TextTower
    resolved: models.Resolved
    train: TrainConfig
    image: data.ImageSpec | None = None  # set once the first model exists

    @property
    def label(self) -> str:
        return self.tower.label


@dataclass
class Baseline:
    name: str
    spec: str
    resolved: models.Resolved


@dataclass
class Plan:
    """A validated run: every name resolved and every input checked."""

    rows: data.Rows
    strategies: list[str]
    sets: list[data.EvalSet]
    skipped_sets: list[str]
    arms: list[Arm]
    finetune: list[str]
    baselines: list[Baseline]
    prompts: dict[str, dict[str, Any]]
    seeds: list[int]
    device: torch.device
    model: str
    reference: str | None
    eval_seed: int = 0
    folds: int = 5
    notes: list[str] = field(default_factory=list)


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise models.ModelError("--device cuda asked for, but torch sees no CUDA device")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def parse_baseline(text: str) -> tuple[str, str, str | None]:
    """``NAME=MODEL[@PRETRAINED]`` to (name, model, pretrained)."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise UsageError(f"--baseline {text!r}: expected NAME=MODEL[@PRETRAINED], e.g. openai=ViT-B-16@openai "
                         "or biomedclip=hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")
    model, _, pretrained = spec.strip().partition("@")  # model names hold no "@"; paths may
    return name.strip(), model, pretrained or None


def _train_config(args: argparse.Namespace, dev: dict[str, Any], model: str, resolved: models.Resolved,
                  dist: Dist) -> TrainConfig:
    per_model = {**dev, **MODEL_DEFAULTS.get(model, OTHER_MODEL_DEFAULTS)}
    towers = resolved.pretrained_towers
    tuned = resolved.pretrained  # the image tower starts from trained weights: fine-tuning
    hf = resolved.tower.kind == "hf"
    lr = args.lr or per_model["lr"]
    cfg = TrainConfig(
        epochs=args.epochs if args.epochs is not None else (FINETUNE_DEFAULTS["epochs"] if tuned
                                                            else per_model["epochs"]),
        batch_size=args.batch_size or per_model["batch_size"],
        lr=lr,
        warmup=args.warmup,
        augment=args.augment == "crop",
        precision=args.precision or dev["precision"],
        lr_image=args.lr_image or (FINETUNE_DEFAULTS["lr_image"] if "image" in towers else lr),
        lr_text=args.lr_text or (FINETUNE_DEFAULTS["lr_text_hf" if hf else "lr_text"] if "text" in towers else lr),
        lr_new=args.lr_new or (FINETUNE_DEFAULTS["lr_new"] if tuned else lr),
        select_best=args.epoch_select == "best" or (args.epoch_select == "auto" and tuned),
    )
    if cfg.batch_size < 2 * dist.world_size:
        raise UsageError(f"--batch-size {cfg.batch_size} is below 2 per process ({dist.world_size} processes)")
    return cfg


def make_plan(args: argparse.Namespace, dist: Dist) -> Plan:
    """Resolve defaults and check every input; raises before any training or decoding."""
    device = _device(args.device)
    dev = DEVICE_DEFAULTS[device.type]
    model = args.model or dev["model"]
    finetune = _list(args.finetune) or ["full"]
    bad = [m for m in finetune if m not in models.FINETUNE_MODES]
    if bad:
        raise UsageError(f"--finetune {', '.join(bad)}: modes are {', '.join(models.FINETUNE_MODES)}")
    towers = [models.parse_text_tower(t) for t in dict.fromkeys(_list(args.text_tower) or ["clip"])]
    config_dir = args.out / "model_configs"
    arms = []
    for tower in towers:
        resolved = models.resolve(model, args.pretrained, tower, config_dir, args.pretrained_image,
                                  label=model if tower.kind == "clip" else f"{model} + {tower.label}")
        arms.append(Arm(tower, resolved, _train_config(args, dev, model, resolved, dist)))
    baselines = []
    for text in args.baseline:
        name, spec_model, pretrained = parse_baseline(text)
        if name in [b.name for b in baselines]:
            raise UsageError(f"--baseline {name!r} is given twice")
        resolved = models.resolve(spec_model, pretrained, models.TextTower("clip"), config_dir, label=name)
        baselines.append(Baseline(name, text.partition("=")[2], resolved))
    rows = data.load_rows(args.data)
    names = _list(args.strategies) or data.default_strategies(rows)
    if not names and not args.eval_only:
        raise data.BuildError(f"no caption strategy can caption every training row of {args.data}")
    data.check_strategies(rows, names)
    reference = args.reference or (names[0] if names else None)
    if args.reference and args.reference not in names:
        raise UsageError(f"--reference {args.reference!r} is not one of the strategies: {', '.join(names)}")
    sets, skipped = data.resolve_eval_sets(rows, _list(args.eval_sets) or None)
    data.check_folds(rows, sets, args.folds)
    prompts = {}
    for key, path in (("zs", args.prompts), ("zsh", args.heldout_prompts)):
        if not Path(path).is_file():
            raise UsageError(f"zero-shot prompt file {path} not found")
        try:
            prompts[key] = evaluate.load_prompts(path)
        except ValueError as err:
            raise UsageError(str(err)) from None
    return Plan(rows, names, sets, skipped, arms, finetune, baselines, prompts,
                _int_list(args.seeds, "--seeds"), device, model, reference, args.eval_seed, args.folds)


def set_threads(arg: str) -> int:
    """Threads for torch on the CPU.

    OpenMP threads spin while they wait for each other; on cores other work
    already keeps busy that costs more than the extra thread gives (three times
    slower on two shared cores), so ``auto`` counts only idle cores. Under
    torchrun, OMP_NUM_THREADS (which it sets) wins over ``auto``.
    """
    if arg == "auto":
        if "OMP_NUM_THREADS" in os.environ:
            return torch.get_num_threads()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, min(cores, round(cores - os.getloadavg()[0])))
    else:
        threads = _int_list(arg, "--threads")[0]
    torch.set_num_threads(threads)
    return threads


def backend_for(device: str, cuda_available: bool) -> str:
    """NCCL only for a CUDA run; a CPU run (``--device cpu``, or no GPU) uses gloo even on a GPU host."""
    if os.environ.get("TRAIN_MIN_BACKEND") in ("gloo", "nccl"):
        return os.environ["TRAIN_MIN_BACKEND"]
    uses_cuda = device == "cuda" or (device == "auto" and cuda_available)
    return "nccl" if uses_cuda and cuda_available else "gloo"


def init_dist(device: str = "auto") -> Dist:
    """Join the process group torchrun set up (NCCL for CUDA devices, gloo on the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    backend = backend_for(device, torch.cuda.is_available())
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # rank 0 evaluates while the others wait at a barrier: allow a long evaluation
    tdist.init_process_group(backend, timeout=timedelta(hours=3))
    return Dist(rank=tdist.get_rank(), world_size=tdist.get_world_size())


def _barrier(dist: Dist) -> None:
    if dist.world_size > 1:
        import torch.distributed as tdist

        tdist.barrier()


def image_spec(model: torch.nn.Module, resize_mode: str) -> tuple[data.ImageSpec, models.Preprocess]:
    pre = models.preprocess(model)
    mode = pre.resize_mode if resize_mode == "model" else resize_mode
    return data.ImageSpec(pre.size, mode, pre.interpolation, pre.fill_color), pre


class Caches:
    """Image caches per preprocessing: decoded once (by the first process of each machine), memory-mapped."""

    def __init__(self, rows: data.Rows, folder: Path, dist: Dist) -> None:
        self.rows, self.folder, self.dist, self._open = rows, folder, dist, {}

    def get(self, spec: data.ImageSpec, collective: bool = True) -> np.ndarray:
        if spec not in self._open:
            if int(os.environ.get("LOCAL_RANK", "0")) == 0 or not collective:
                data.build_image_cache(self.rows, spec, self.folder)
            if collective:
                _barrier(self.dist)
            self._open[spec] = data.open_image_cache(data.cache_path(self.rows, spec, self.folder), self.rows, spec)
        return self._open[spec]


def _wrap(model: torch.nn.Module, device: torch.device, dist: Dist) -> torch.nn.Module:
    model = model.to(device)
    if dist.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def row_id(kind: str, strategy: str | None = None, tower: str | None = None, finetune: str | None = None,
           name: str | None = None) -> str:
    if kind == "baseline":
        return f"baseline:{name}"
    if kind == "untrained":
        return f"untrained:{tower}"
    return f"{strategy}:{tower}:{finetune}"


def _json_dump(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=report._json) + "\n")


def run(args: argparse.Namespace, dist: Dist | None = None) -> dict[str, Any] | None:
    """The comparison; returns the summary on rank 0 (None on other ranks)."""
    dist = dist or Dist()
    t0 = time.perf_counter()
    args.threads_used = set_threads(args.threads)
    plan = make_plan(args, dist)
    # Seeds fix weights, order and sampling; deterministic kernels on top are not cheap (half
    # the speed on two CPU cores), so they are asked for, not the default.
    deterministic = bool(args.deterministic)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    out: Path = args.out
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        for line in plan.skipped_sets:
            print(f"evaluation set {line}", flush=True)
    # Every model of the run is created before any decoding or training: a checkpoint that does not
    # fit its config fails here.
    firsts = {arm.label: models.create(arm.resolved, None, plan.seeds[0]) for arm in plan.arms}
    caches = Caches(plan.rows, args.cache_dir or out / "cache", dist)
    for arm in plan.arms:
        arm.image, _ = image_spec(firsts[arm.label], args.resize_mode)
    train_rows = plan.rows.where("train")
    val_rows = plan.rows.where("validation")
    texts = {s: data.strategy_texts(plan.rows, s, train_rows) for s in plan.strategies}
    same_as = data.twins(texts)
    runs: list[dict[str, Any]] = []
    meta: dict[str, dict[str, Any]] = {}
    for baseline in plan.baselines:
        if dist.main:
            runs.append(_evaluate_baseline(baseline, plan, caches, args, out, meta))
        _barrier(dist)
    for arm in plan.arms:
        tokenize = models.tokenizer(arm.resolved)
        images = caches.get(arm.image)
        pre = models.preprocess(firsts[arm.label])
        norm = (pre.mean, pre.std)
        banks = {s: TextBank(texts[s], tokenize) for s in plan.strategies}
        val_banks = {s: _val_bank(plan.rows, s, val_rows, tokenize) for s in plan.strategies}
        amp = arm.train.precision == "amp"
        untrained = row_id("untrained", tower=arm.label)
        meta[untrained] = {"id": untrained, "kind": "untrained", "strategy": None, "tower": arm.label,
                           "finetune": None, "model": arm.resolved.label, "weights": arm.resolved.weights,
                           "activation": models.activation(firsts[arm.label]),
                           "label": "initial weights, no training" if arm.resolved.pretrained
                           else "untrained (random weights)",
                           "preprocess": asdict(arm.image)}
        for seed in plan.seeds:
            initial = firsts.pop(arm.label, None) if seed == plan.seeds[0] else None
            initial = initial if initial is not None else models.create(arm.resolved, None, seed)
            loaded = models.loaded_names(arm.resolved, initial)
            if dist.main:
                runs.append(_evaluate_run(untrained, seed, copy.deepcopy(initial), tokenize, plan, images, norm, amp,
                                          None, None, out))
            if args.eval_only:
                continue
            for mode in plan.finetune:
                for name in plan.strategies:
                    rid = row_id("trained", name, arm.label, mode)
                    meta.setdefault(rid, {"id": rid, "kind": "trained", "strategy": name, "tower": arm.label,
                                          "finetune": mode, "model": arm.resolved.label,
                                          "weights": arm.resolved.weights, "label": name,
                                          "preprocess": asdict(arm.image),
                                          "train_config": asdict(arm.train)})
                    if same_as[name] is not None:
                        if dist.main:
                            runs.append(_shared_run(runs, rid, row_id("trained", same_as[name], arm.label, mode),
                                                    same_as[name], seed, out))
                        continue
                    model = copy.deepcopy(initial)
                    params = models.apply_finetune(model, mode, args.unlocked_image_groups, args.unlocked_text_layers)
                    wrapped = _wrap(model, plan.device, dist)
                    cfg = TrainConfig(**{**asdict(arm.train), "seed": seed})
                    log = train(wrapped, images, train_rows, banks[name], cfg, plan.device, norm[0], norm[1], dist,
                                loaded=loaded,
                                val=(val_banks[name][0], val_banks[name][1]) if val_banks[name] else None)
                    if dist.main:
                        best = f", best epoch {log.best_epoch} of {len(log.epoch_loss)}" if log.best_epoch else ""
                        print(f"{rid} seed {seed}: {log.steps} steps, loss {log.epoch_loss[0]:.3f} -> "
                              f"{log.epoch_loss[-1]:.3f}{best}, {log.samples / max(log.seconds, 1e-9):.0f} samples/s",
                              flush=True)
                        runs.append(_evaluate_run(rid, seed, model, tokenize, plan, images, norm, amp,
                                                  log.to_dict(), params, out))
                        if args.save_checkpoints:
                            (out / "checkpoints").mkdir(exist_ok=True)
                            torch.save({"state_dict": model.state_dict(), "open_clip_config": arm.resolved.name,
                                        "preprocess_cfg": asdict(pre) | {"resize_mode": arm.image.resize_mode}},
                                       out / "checkpoints" / f"{rid.replace(':', '-')}-seed{seed}.pt")
                    del model, wrapped
                    _barrier(dist)
            del initial
            gc.collect()
    if not dist.main:
        return None
    result = _summary(args, plan, runs, meta, dist, time.perf_counter() - t0, deterministic)
    report.write(out, result)
    plots.few_shot_plot(result, out / "fewshot.png")
    print(f"wrote {out / 'summary.md'}, {out / 'summary.json'}, {out / 'fewshot.png'}", flush=True)
    return result


def _val_bank(
    rows: data.Rows, strategy: str, val_rows: np.ndarray, tokenize: Any
) -> tuple[np.ndarray, TextBank] | None:
    """Validation rows with a caption under the strategy (first candidate), for choosing the best epoch."""
    texts = data.row_texts(rows, strategy, val_rows)
    keep = [j for j, t in enumerate(texts) if t]
    if len(keep) < 2:
        return None
    return val_rows[keep], TextBank([texts[j][:1] for j in keep], tokenize)


def _evaluate_baseline(baseline: Baseline, plan: Plan, caches: Caches, args: argparse.Namespace, out: Path,
                       meta: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One baseline, created, evaluated with its own preprocessing and freed before the next."""
    rid = row_id("baseline", name=baseline.name)
    model = models.create(baseline.resolved, None, plan.seeds[0])
    spec, pre = image_spec(model, args.resize_mode)
    images = caches.get(spec, collective=False)
    tokenize = models.tokenizer(baseline.resolved)
    meta[rid] = {"id": rid, "kind": "baseline", "strategy": None, "tower": None, "finetune": None,
                 "model": baseline.spec, "weights": baseline.resolved.weights, "label": baseline.name,
                 "activation": models.activation(model), "preprocess": asdict(spec)}
    amp = (args.precision or DEVICE_DEFAULTS[plan.device.type]["precision"]) == "amp"
    # Its weights do not depend on the seed, nor do the evaluation's draws (--eval-seed): evaluated once.
    result = _evaluate_run(rid, plan.seeds[0], model, tokenize, plan, images, (pre.mean, pre.std), amp, None, None,
                           out)
    del model
    gc.collect()
    return result


def _evaluate_run(rid: str, seed: int, model: torch.nn.Module, tokenize: Any, plan: Plan, images: np.ndarray,
                  norm: tuple[Any, Any], amp: bool, log: dict[str, Any] | None, params: dict[str, int] | None,
                  out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    model = model.to(plan.device)
    results = evaluate.evaluate(model, tokenize, plan.rows, images, plan.sets, plan.device, norm[0], norm[1],
                                plan.prompts, seed=plan.eval_seed, amp=amp, pair_strategies=plan.strategies,
                                folds=plan.folds)
    run = {"id": rid, "seed": seed, "train": log, "parameters": params, "eval": results,
           "eval_seconds": time.perf_counter() - t0}
    _json_dump(out / f"run-{rid.replace(':', '-')}-seed{seed}.json", run)
    return run


def _shared_run(runs: list[dict[str, Any]], rid: str, twin_id: str, twin: str, seed: int, out: Path) -> dict[str, Any]:
    """The results of a strategy whose captions equal an earlier one's on every training row."""
    source = next(r for r in runs if r["id"] == twin_id and r["seed"] == seed)
    run = {**source, "id": rid, "same_as": twin}
    _json_dump(out / f"run-{rid.replace(':', '-')}-seed{seed}.json", run)
    return run


def _summary(args: argparse.Namespace, plan: Plan, runs: list[dict[str, Any]], meta: dict[str, Any],
             dist: Dist, seconds: float, deterministic: bool) -> dict[str, Any]:
    agg = report.aggregate(runs)
    first = runs[0]
    main = plan.sets[0].name
    train_rows = plan.rows.where("train")
    names = plan.strategies
    div = report.diversity(plan.rows, names) if names else {}
    order = [m for m in meta.values() if m["kind"] == "baseline"] + \
        [m for m in meta.values() if m["kind"] == "untrained"] + [m for m in meta.values() if m["kind"] == "trained"]
    arms = {arm.label: {"model": arm.resolved.label, "open_clip_config": arm.resolved.name,
                        "weights": arm.resolved.weights, "pretrained_towers": sorted(arm.resolved.pretrained_towers),
                        "train": asdict(arm.train), "preprocess": asdict(arm.image) if arm.image else None}
            for arm in plan.arms}
    cfg0 = plan.arms[0].train
    config = {
        "build": str(plan.rows.path), "build_name": plan.rows.path.name, "rows": len(plan.rows),
        "splits": ", ".join(f"{k} {v}" for k, v in Counter(plan.rows.split).items()),
        "model": plan.model, "pretrained": args.pretrained, "pretrained_image": args.pretrained_image,
        "text_towers": [a.label for a in plan.arms], "finetune": plan.finetune, "arms": arms,
        "baselines": {b.name: b.spec for b in plan.baselines}, "eval_only": bool(args.eval_only),
        "epochs": cfg0.epochs, "batch_size": cfg0.batch_size, "lr": cfg0.lr, "augment": cfg0.augment,
        "precision": cfg0.precision, "device": plan.device.type, "world_size": dist.world_size,
        "seeds": plan.seeds, "deterministic_algorithms": deterministic, "threads": args.threads_used,
        "folds": args.folds, "eval_seed": args.eval_seed, "reference": plan.reference, "bootstrap": args.bootstrap,
        "prompts": {"zs": str(args.prompts), "zsh": str(args.heldout_prompts)},
        "command": shlex.join(["python", "train_min/run.py", *(args.argv or [])]),
    }
    notes = [f"evaluation set {s}" for s in plan.skipped_sets]
    for arm in plan.arms:
        notes += arm.resolved.notes
    for b in plan.baselines:
        notes += b.resolved.notes
    notes += sorted({f"{r['id'].split(':')[0]} has the same caption as {r['same_as']} on every training row: "
                     "trained once, results shared" for r in runs if r.get("same_as")})
    for set_name, res in first["eval"].items():
        notes += [f"{set_name}: {n}" for n in dict.fromkeys(res["notes"])]
    tiers = {s: data.tier_shares(plan.rows, s, train_rows) for s in names}
    warnings = report.tier_warnings(tiers)
    overlap = {}
    classes = data.classes_of(plan.rows, np.concatenate([s.indices for s in plan.sets]))
    for s in names:
        captions = [t for row in data.row_texts(plan.rows, s, train_rows) for t in row]
        overlap[s] = {k: evaluate.prompt_overlap(evaluate.all_prompts(p, classes), captions)
                      for k, p in plan.prompts.items()}
    result = {
        "config": config, "strategies": names, "main_set": main, "rows": order,
        "sets": {s.name: {"n_rows": s.n_rows, "n_texts": first["eval"][s.name]["n_texts"], "classes": s.classes,
                          "probe_protocol": first["eval"][s.name].get("probe_protocol")} for s in plan.sets},
        "chance": {s: r["chance"] for s, r in first["eval"].items()},
        "aggregate": agg,
        "captions_per_image": {s: float(np.mean([len(t) for t in texts])) if len(texts) else 0.0
                               for s, texts in ((s, data.strategy_texts(plan.rows, s, train_rows)) for s in names)},
        "tiers": tiers,
        "prompt_overlap": overlap,
        "bootstrap": report.bootstrap(runs, order, plan.reference,
                                      [s.name for s in plan.sets if s.name == main or data.is_held_out(s.name)],
                                      args.bootstrap, seed=plan.seeds[0]) if plan.reference else {},
        "diversity": div,
        "correlations": report.correlations(div, agg, names, main, order) if names else {},
        "train": {f"{r['id']}-seed{r['seed']}": r["train"] for r in runs if r["train"]},
        "world_size": dist.world_size,
        "seconds": seconds,
        "warnings": warnings,
        "notes": notes,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, before CUDA starts
    args.argv = argv
    dist = init_dist(args.device)
    try:
        run(args, dist)
    except (data.BuildError, models.ModelError, UsageError) as err:
        if dist.main:
            print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        if dist.world_size > 1:
            import torch.distributed as tdist

            tdist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
