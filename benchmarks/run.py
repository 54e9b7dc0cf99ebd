"""Build throughput and memory, as ratios against baselines measured in the same run.

    python benchmarks/run.py [--images 2000] [--scale 10] [--runs 3] [--parts throughput,passthrough,memory]
                             [--out benchmarks/results]

1. Throughput: phantom BUSI/DDTI/AUL images (RGB PNG, JPEG) are built with
   ``--workers 1`` and ``--workers 2`` and compared with a bare loop that
   reads, decodes and PNG-encodes the same files in one process, and with a
   loop doing exactly the build's per-image work (decode, grayscale, encode,
   hash), which isolates the pipeline's own overhead. ``--runs`` repeats the
   builds (and the bare loop before each pair); each run's figures are kept,
   with the per-stage seconds of its builds (``stats.json``'s ``stages``) and
   the machine's load average when it started, since other work on the same
   cores slows the two-worker build most.
2. Pass-through: the same comparison on 8-bit grayscale PNGs, which the build
   copies without re-encoding.
3. Memory: peak RSS of a build of N images and of ``scale`` x N images, each
   in a fresh process with one worker.

Every build runs in a fresh interpreter (the package imported before the clock
starts), as a user's command would.

Results go to ``OUT/bench.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from echocaptions.imaging.normalise import PNG_COMPRESS_LEVEL, normalise_file
from echocaptions.sources.imagefolder import media_kind

REPO = Path(__file__).resolve().parents[1]


def bare_loop(files: list[Path]) -> float:
    """Seconds to read, decode and PNG-encode every file in one process."""
    start = time.perf_counter()
    for path in files:
        img = Image.open(io.BytesIO(path.read_bytes()))
        img.load()
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return time.perf_counter() - start


def bare_normalise_loop(files: list[Path]) -> float:
    """Seconds for the build's own per-image work (decode, normalise, encode, hash) in a bare loop."""
    start = time.perf_counter()
    for path in files:
        normalise_file(path, max_side=None)
    return time.perf_counter() - start


def image_files(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.is_file() and media_kind(p) == "image" and "_mask" not in p.name
    )


BUILD = """
import json, sys, time
from echocaptions.pipeline import build
from echocaptions.recipe import load_recipe
recipe = load_recipe(sys.argv[1], data_root=sys.argv[2], out=sys.argv[3], overrides=["image.max_side=null"])
start = time.perf_counter()
result = build(recipe, workers=int(sys.argv[4]), quiet=True)
print(json.dumps({"seconds": time.perf_counter() - start, "stats": result.stats}))
"""


def timed_build(recipe_path: Path, data_root: Path, out: Path, workers: int) -> tuple[float, dict]:
    """Seconds of ``build()`` and its stats, in a fresh interpreter with the package imported.

    A fresh process per build, as a user's command: what one build loaded (the
    caption stage's libraries, the local executor's fork server) does not
    speed up the next.
    """
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(recipe_path), str(data_root), str(out), str(workers)],
        check=True, capture_output=True, text=True,
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return measured["seconds"], measured["stats"]


def write_recipe(folder: Path, name: str, sources: list[tuple[str, str, str]]) -> Path:
    lines = [f"name: {name}", "sources:"]
    for src_name, layout, path in sources:
        lines += [f"  - name: {src_name}", f"    layout: {layout}", f"    path: {path}"]
        if layout == "imagefolder":
            lines.append("    options: {organ: breast}")
    lines += ["captions: {policy: [template]}", "output: {rows_per_shard: 5000, shard_items: 256}"]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def grey_folder(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> Path:
    """``n`` distinct 8-bit grayscale PNGs (speckle) in three class folders."""
    rng = np.random.default_rng(seed)
    base = (rng.rayleigh(60.0, size=(size[0] * 2, size[1] * 2))).clip(0, 255).astype(np.uint8)
    for i in range(n):
        folder = root / ("benign", "malignant", "normal")[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        y, x = rng.integers(0, size[0]), rng.integers(0, size[1])
        tile = base[y : y + size[0], x : x + size[1]].copy()
        tile[0, :8] = np.frombuffer(i.to_bytes(8, "little"), dtype=np.uint8)
        Image.fromarray(tile, "L").save(folder / f"{i:06d}.png", compress_level=1)
    return root


def peak_rss_mb(recipe_path: Path, data_root: Path, out: Path) -> float:
    """Peak RSS (MiB) of a one-worker build run in a fresh interpreter.

    Read from VmHWM: ``ru_maxrss`` survives exec and would report the parent's peak.
    """
    code = (
        "import resource, sys\n"
        "from echocaptions.pipeline import build\n"
        "from echocaptions.recipe import load_recipe\n"
        "r = load_recipe(sys.argv[1], data_root=sys.argv[2], out=sys.argv[3])\n"
        "build(r, workers=1, quiet=True)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "print(int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(recipe_path), str(data_root), str(out)],
        check=True, capture_output=True, text=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


TARGETS = {"ratio_workers_1": 1.25, "ratio_workers_2": 1.7, "memory": 1.1}
PARTS = ("throughput", "passthrough", "memory")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _stage_seconds(stats: dict) -> dict[str, float]:
    return {name: s["wall_seconds"] for name, s in sorted((stats.get("stages") or {}).items())}


def throughput_run(recipe: Path, data: Path, files: list[Path], tmp_path: Path) -> dict:
    """One run: the bare loop, then a one-worker and a two-worker build of the same files."""
    load = _load()
    bare = min(bare_loop(files) for _ in range(2))
    same_work = min(bare_normalise_loop(files) for _ in range(2))
    load_1 = _load()
    t1, stats_1 = timed_build(recipe, data, tmp_path / "w1", 1)
    load_2 = _load()
    t2, stats_2 = timed_build(recipe, data, tmp_path / "w2", 2)
    shutil.rmtree(tmp_path / "w1")
    shutil.rmtree(tmp_path / "w2")
    return {
        "files": len(files),
        "rows": stats_1["rows"],
        "load_average": {"bare_loop": load, "workers_1": load_1, "workers_2": load_2},
        "bare_loop_img_per_s": len(files) / bare,
        "workers_1_img_per_s": len(files) / t1,
        "workers_2_img_per_s": len(files) / t2,
        "ratio_workers_1": bare / t1,
        "ratio_workers_2": bare / t2,
        "same_work_loop_img_per_s": len(files) / same_work,
        "overhead_ratio_workers_1": same_work / t1,
        "overhead_ratio_workers_2": same_work / t2,
        "stage_seconds_workers_1": _stage_seconds(stats_1),
        "stage_seconds_workers_2": _stage_seconds(stats_2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="images in the throughput and small memory builds")
    parser.add_argument("--scale", type=int, default=10, help="the large memory build has scale x images")
    parser.add_argument("--runs", type=int, default=1, help="throughput runs (each: bare loop, then both builds)")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated parts to run, of {', '.join(PARTS)}"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or args.runs < 1:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}" if unknown else "--runs must be >= 1")
    from echocaptions.synth import make_phantom

    results: dict = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "images": args.images,
        "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        grey_recipe = write_recipe(tmp_path, "grey", [("grey", "imagefolder", ".")])
        if "throughput" in parts:
            per_class = max(1, args.images // 9)
            data = tmp_path / "phantom"
            make_phantom(data, organs=["breast", "thyroid", "liver"], per_class=per_class, seed=0)
            layouts = [("busi", "busi", "BUSI"), ("ddti", "ddti", "DDTI"), ("aul", "aul", "AUL")]
            recipe = write_recipe(tmp_path, "bench", layouts)
            files = [f for _, _, p in layouts for f in image_files(data / p)]
            results["throughput_runs"] = [throughput_run(recipe, data, files, tmp_path) for _ in range(args.runs)]

        if "passthrough" in parts:
            small = grey_folder(tmp_path / "grey_small", args.images, (256, 320))
            grey_files = image_files(small)
            load = _load()
            bare_grey = min(bare_loop(grey_files) for _ in range(2))
            tg, grey_stats = timed_build(grey_recipe, small, tmp_path / "g1", 1)
            results["passthrough"] = {
                "files": len(grey_files),
                "load_average": load,
                "passed_through": grey_stats["image_stage"]["passthrough_png"],
                "bare_loop_img_per_s": len(grey_files) / bare_grey,
                "workers_1_img_per_s": len(grey_files) / tg,
                "ratio_workers_1": bare_grey / tg,
            }
            shutil.rmtree(tmp_path / "g1")

        if "memory" in parts:
            mem_small = grey_folder(tmp_path / "mem_small", args.images, (96, 128), seed=1)
            mem_large = grey_folder(tmp_path / "mem_large", args.images * args.scale, (96, 128), seed=2)
            rss_small = peak_rss_mb(grey_recipe, mem_small, tmp_path / "m1")
            rss_large = peak_rss_mb(grey_recipe, mem_large, tmp_path / "m2")
            results["memory"] = {
                "small_images": args.images,
                "large_images": args.images * args.scale,
                "small_peak_rss_mb": rss_small,
                "large_peak_rss_mb": rss_large,
                "ratio_large_to_small": rss_large / rss_small,
            }
    results["self_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    report(results, args.scale)
    print(f"results: {args.out / 'bench.json'}")
    return 0


def report(results: dict, scale: int) -> None:
    """The table on stdout: one line per measure and run, with the load average it ran under."""
    print(f"{'measure':46s} {'value':>7s}  {'load':>5s}  target")
    for i, tp in enumerate(results.get("throughput_runs", []), 1):
        load = tp["load_average"]
        print(f"run {i}: {'build --workers 1 / bare loop (RGB PNG, JPEG)':39s} {tp['ratio_workers_1']:7.2f}  "
              f"{load['workers_1']:5.2f}  >= {TARGETS['ratio_workers_1']}")
        print(f"run {i}: {'build --workers 2 / bare loop':39s} {tp['ratio_workers_2']:7.2f}  "
              f"{load['workers_2']:5.2f}  >= {TARGETS['ratio_workers_2']}")
        print(f"run {i}: {'build --workers 1 / same-work loop':39s} {tp['overhead_ratio_workers_1']:7.2f}  "
              f"{load['workers_1']:5.2f}  (pipeline overhead)")
        print(f"run {i}: {'build --workers 2 / same-work loop':39s} {tp['overhead_ratio_workers_2']:7.2f}  "
              f"{load['workers_2']:5.2f}")
        for workers in (1, 2):
            seconds = ", ".join(f"{k} {v:.2f}" for k, v in tp[f"stage_seconds_workers_{workers}"].items())
            print(f"run {i}:   stage seconds, --workers {workers}: {seconds}")
        print(f"run {i}:   bare loop {tp['bare_loop_img_per_s']:.0f} img/s; workers 1 {tp['workers_1_img_per_s']:.0f} "
              f"img/s; workers 2 {tp['workers_2_img_per_s']:.0f} img/s")
    if "passthrough" in results:
        pt = results["passthrough"]
        print(f"{'build --workers 1 / bare loop (grey PNG)':46s} {pt['ratio_workers_1']:7.2f}  "
              f"{pt['load_average']:5.2f}  pass-through {pt['passed_through']}/{pt['files']}")
    if "memory" in results:
        mem = results["memory"]
        print(f"{f'peak RSS {scale}x images / 1x':46s} {mem['ratio_large_to_small']:7.2f}  {'':5s}  "
              f"<= {TARGETS['memory']}  ({mem['small_peak_rss_mb']:.0f} -> {mem['large_peak_rss_mb']:.0f} MiB)")


if __name__ == "__main__":
    sys.exit(main())
