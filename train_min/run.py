"""Train one small CLIP per caption strategy on an echocaptions build, evaluate, and compare.

    python train_min/run.py --data BUILD [--strategies a,b,c] [--model tiny|ViT-B-16|...]
        [--text-tower clip|hf:LOCAL_DIR] [--finetune full|partial|frozen-image]
        [--pretrained CKPT] [--epochs N] [--seeds 0,1,2] [--eval-sets NAME,...]
        [--device auto|cpu|cuda] [--precision amp|fp32] [--batch-size N] [--out results/]

    torchrun --nproc-per-node N train_min/run.py ...   # DDP, features gathered for the loss

Per seed the model is created once; every strategy trains a copy of those
weights on the same images in the same order, and the untrained copy is
evaluated too, as the floor every metric must clear. Everything a run could
trip on (captions, evaluation sets, model name, text tower, checkpoint) is
checked before any training.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="build folder (echocaptions build --out)")
    p.add_argument("--strategies", help="comma-separated caption strategies (default: the distinct ones of the build)")
    p.add_argument("--model", help="open_clip config: tiny (train_min/configs) or an open_clip name; "
                   "default tiny on the CPU, ViT-B-16 on a GPU")
    p.add_argument("--text-tower", default="clip", help="clip, or hf:LOCAL_DIR for a BERT-family model saved locally")
    p.add_argument("--finetune", default="full", choices=models.FINETUNE_MODES)
    p.add_argument("--unlocked-image-groups", type=int, default=2,
                   help="partial: image-tower groups left trainable (ViT: open_clip's groups, the last being "
                   "the projection; ResNet: stem, four stages, attention pool)")
    p.add_argument("--unlocked-text-layers", type=int, default=1,
                   help="partial: text-tower layers left trainable (final norm and projection always train)")
    p.add_argument("--pretrained", help="local open_clip checkpoint to start from")
    p.add_argument("--epochs", type=int, help="default: 30 for tiny, 20 for tiny-vit, 10 for open_clip configs")
    p.add_argument("--lr", type=float, help="peak learning rate (default: 2e-3 for tiny and tiny-vit, else 5e-4)")
    p.add_argument("--batch-size", type=int, help="global batch, split over processes under torchrun "
                   "(default: 32 for tiny and tiny-vit, else 64 on the CPU, 256 on a GPU)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; results are mean ± std over them")
    p.add_argument("--eval-sets", help="comma-separated: test, test/<dataset>, eval_<source> or a dataset "
                   "name (default: test, each dataset in it and each held-out source)")
    p.add_argument("--prompts", type=Path, default=evaluate.PROMPTS, help="zero-shot prompt JSON")
    p.add_argument("--augment", default="crop", choices=("crop", "none"),
                   help="crop: a random resized crop of 80-100 %% of each training image (default)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", choices=("amp", "fp32"), help="default amp on a GPU, fp32 on the CPU")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels too (slower); seeds already fix weights, order and sampling")
    p.add_argument("--threads", default="auto",
                   help="CPU threads for torch; auto: the cores not already busy (load average), at least 1")
    p.add_argument("--cache-dir", type=Path, help="uint8 image cache (default: OUT/cache)")
    p.add_argument("--save-checkpoints", action="store_true", help="write each trained model to OUT/checkpoints")
    p.add_argument("--out", type=Path, default=Path("results"))
    return p.parse_args(argv)


@dataclass
class Plan:
    """A validated run: every name resolved and every input checked."""

    rows: data.Rows
    strategies: list[str]
    sets: list[data.EvalSet]
    skipped_sets: list[str]
    config_name: str
    tower: models.TextTower
    checkpoint: Path | None
    prompts: dict[str, Any]
    seeds: list[int]
    device: torch.device
    train: TrainConfig
    model: str


def _device(name: str, dist: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise models.ModelError("--device cuda asked for, but torch sees no CUDA device")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


class UsageError(ValueError):
    """Arguments that do not make a run."""


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise UsageError(f"{what} names no value")
    return values


def make_plan(args: argparse.Namespace, dist: Dist) -> Plan:
    """Resolve defaults and check every input; raises BuildError or ModelError before any training."""
    device = _device(args.device, dist)
    dev = DEVICE_DEFAULTS[device.type]
    model = args.model or dev["model"]
    tower = models.parse_text_tower(args.text_tower)
    checkpoint = models.check_checkpoint(args.pretrained)
    models.check_model_name(model)
    rows = data.load_rows(args.data)
    names = [s.strip() for s in args.strategies.split(",") if s.strip()] if args.strategies else data.default_strategies(rows)
    if not names:
        raise data.BuildError(f"no caption strategy can caption every training row of {args.data}")
    data.check_strategies(rows, names)
    eval_names = [s.strip() for s in args.eval_sets.split(",") if s.strip()] if args.eval_sets else None
    sets, skipped = data.resolve_eval_sets(rows, eval_names)
    if not args.prompts.is_file():
        raise UsageError(f"zero-shot prompt file {args.prompts} not found")
    try:
        prompts = evaluate.load_prompts(args.prompts)
    except ValueError as err:
        raise UsageError(str(err)) from None
    config_name = models.resolve_config(model, tower, args.out / "model_configs")
    per_model = {**dev, **MODEL_DEFAULTS.get(model, OTHER_MODEL_DEFAULTS)}
    cfg = TrainConfig(
        epochs=args.epochs if args.epochs is not None else per_model["epochs"],
        batch_size=args.batch_size or per_model["batch_size"],
        lr=args.lr or per_model["lr"],
        augment=args.augment == "crop",
        precision=args.precision or dev["precision"],
    )
    if cfg.batch_size < 2 * dist.world_size:
        raise UsageError(f"--batch-size {cfg.batch_size} is below 2 per process ({dist.world_size} processes)")
    return Plan(rows, names, sets, skipped, config_name, tower, checkpoint, prompts,
                _int_list(args.seeds, "--seeds"), device, cfg, model)


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


def init_dist() -> Dist:
    """Join the process group torchrun set up (gloo on the CPU, NCCL on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    backend = "nccl" if torch.cuda.is_available() and os.environ.get("TRAIN_MIN_BACKEND") != "gloo" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # rank 0 evaluates while the others wait at a barrier: allow a long evaluation
    tdist.init_process_group(backend, timeout=timedelta(hours=3))
    return Dist(rank=tdist.get_rank(), world_size=tdist.get_world_size())


def _barrier(dist: Dist) -> None:
    if dist.world_size > 1:
        import torch.distributed as tdist

        tdist.barrier()


def _image_cache(plan: Plan, size: int, cache_dir: Path, dist: Dist) -> np.ndarray:
    """The first process of each machine decodes every image once; the others wait and memory-map its file."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        data.build_image_cache(plan.rows, size, cache_dir)
    _barrier(dist)
    path = data.cache_path(plan.rows, size, cache_dir)
    return data.open_image_cache(path, plan.rows, size)


def _wrap(model: torch.nn.Module, device: torch.device, dist: Dist) -> torch.nn.Module:
    model = model.to(device)
    if dist.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


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
    first = models.create(plan.config_name, plan.checkpoint, plan.seeds[0])
    size, mean, std = models.preprocess(first)
    images = _image_cache(plan, size, args.cache_dir or out / "cache", dist)
    tokenize = models.tokenizer(plan.config_name)
    train_rows = plan.rows.where("train")
    texts = {s: data.strategy_texts(plan.rows, s, train_rows) for s in plan.strategies}
    banks = {s: TextBank(texts[s], tokenize) for s in plan.strategies}
    same_as = data.twins(texts)
    amp = plan.train.precision == "amp"
    runs: list[dict[str, Any]] = []
    for seed in plan.seeds:
        initial = first if seed == plan.seeds[0] else models.create(plan.config_name, plan.checkpoint, seed)
        if dist.main:
            runs.append(_evaluate_run("untrained", seed, copy.deepcopy(initial), tokenize, plan, images,
                                      (mean, std), amp, None, None, out))
        for name in plan.strategies:
            if same_as[name] is not None:
                if dist.main:
                    runs.append(_shared_run(runs, name, same_as[name], seed, out))
                continue
            model = copy.deepcopy(initial)
            params = models.apply_finetune(model, args.finetune, args.unlocked_image_groups, args.unlocked_text_layers)
            wrapped = _wrap(model, plan.device, dist)
            cfg = TrainConfig(**{**asdict(plan.train), "seed": seed})
            log = train(wrapped, images, train_rows, banks[name], cfg, plan.device, mean, std, dist)
            if dist.main:
                print(f"{name} seed {seed}: {log.steps} steps, loss {log.epoch_loss[0]:.3f} -> "
                      f"{log.epoch_loss[-1]:.3f}, {log.samples / max(log.seconds, 1e-9):.0f} samples/s", flush=True)
                runs.append(_evaluate_run(name, seed, model, tokenize, plan, images, (mean, std), amp,
                                          log.to_dict(), params, out))
                if args.save_checkpoints:
                    (out / "checkpoints").mkdir(exist_ok=True)
                    torch.save({"state_dict": model.state_dict()}, out / "checkpoints" / f"{name}-seed{seed}.pt")
            _barrier(dist)
    if not dist.main:
        return None
    result = _summary(args, plan, runs, banks, dist, time.perf_counter() - t0, deterministic)
    report.write(out, result)
    plots.few_shot_plot(result, out / "fewshot.png")
    print(f"wrote {out / 'summary.md'}, {out / 'summary.json'}, {out / 'fewshot.png'}", flush=True)
    return result


def _evaluate_run(name: str, seed: int, model: torch.nn.Module, tokenize: Any, plan: Plan, images: np.ndarray,
                  norm: tuple[Any, Any], amp: bool, log: dict[str, Any] | None, params: dict[str, int] | None,
                  out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    model = model.to(plan.device)
    results = evaluate.evaluate(model, tokenize, plan.rows, images, plan.sets, plan.device, norm[0], norm[1],
                                plan.prompts, seed=seed, amp=amp)
    run = {"strategy": name, "seed": seed, "train": log, "parameters": params, "eval": results,
           "eval_seconds": time.perf_counter() - t0}
    (out / f"run-{name}-seed{seed}.json").write_text(json.dumps(run, indent=2, sort_keys=True, default=report._json) + "\n")
    return run


def _shared_run(runs: list[dict[str, Any]], name: str, twin: str, seed: int, out: Path) -> dict[str, Any]:
    """The results of a strategy whose captions equal an earlier one's on every training row."""
    source = next(r for r in runs if r["strategy"] == twin and r["seed"] == seed)
    run = {**source, "strategy": name, "same_as": twin}
    (out / f"run-{name}-seed{seed}.json").write_text(json.dumps(run, indent=2, sort_keys=True, default=report._json) + "\n")
    return run


def _summary(args: argparse.Namespace, plan: Plan, runs: list[dict[str, Any]], banks: dict[str, TextBank],
             dist: Dist, seconds: float, deterministic: bool) -> dict[str, Any]:
    agg = report.aggregate(runs)
    untrained = next(r for r in runs if r["strategy"] == "untrained")
    main = plan.sets[0].name
    div = report.diversity(plan.rows, plan.strategies)
    cfg = plan.train
    config = {
        "build": str(plan.rows.path), "build_name": plan.rows.path.name, "rows": len(plan.rows),
        "splits": ", ".join(f"{k} {v}" for k, v in Counter(plan.rows.split).items()),
        "model": plan.model, "open_clip_config": plan.config_name, "text_tower": plan.tower.label,
        "finetune": args.finetune, "pretrained": str(plan.checkpoint) if plan.checkpoint else None,
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "augment": cfg.augment,
        "precision": cfg.precision, "device": plan.device.type, "world_size": dist.world_size,
        "seeds": plan.seeds, "deterministic_algorithms": deterministic, "threads": args.threads_used,
        "configuration": " · ".join([plan.model, plan.tower.label, args.finetune, f"{cfg.epochs} ep"]),
        "command": shlex.join(["python", "train_min/run.py", *(args.argv or [])]),
    }
    notes = [f"evaluation set {s}" for s in plan.skipped_sets]
    notes += [f"{r['strategy']} has the same caption as {r['same_as']} on every training row: trained once, "
              "results shared" for r in runs if r.get("same_as") and r["seed"] == plan.seeds[0]]
    for set_name, res in untrained["eval"].items():
        notes += [f"{set_name}: {n}" for n in dict.fromkeys(res["notes"])]
    return {
        "config": config, "strategies": plan.strategies, "main_set": main,
        "sets": {s.name: {"n_rows": s.n_rows, "n_texts": untrained["eval"][s.name]["n_texts"],
                          "classes": s.classes} for s in plan.sets},
        "chance": {s: r["chance"] for s, r in untrained["eval"].items()},
        "aggregate": agg,
        "captions_per_image": {n: b.mean_k for n, b in banks.items()},
        "diversity": div,
        "correlations": report.correlations(div, agg, plan.strategies, main),
        "train": {f"{r['strategy']}-seed{r['seed']}": r["train"] for r in runs if r["train"]},
        "world_size": dist.world_size,
        "seconds": seconds,
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, before CUDA starts
    args.argv = argv
    dist = init_dist()
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
