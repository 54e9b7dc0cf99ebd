"""The Ray executor against the local one, as ratios measured in the same run.

    python benchmarks/ray_executor.py [--images 5000] [--memory 2000,10000] [--repeat 1]

1. Throughput: the same phantom build (BUSI/DDTI/AUL layouts, RGB PNG and
   JPEG, ``--images`` files) with the local executor and with a private Ray
   started by the build, each with 1 and 2 worker processes (Ray: CPUs). Every
   build runs in a fresh interpreter and its wall time includes starting and
   stopping Ray; the fastest of ``--repeat`` runs counts.
2. Driver memory: peak RSS (VmHWM) of the build process alone, not of Ray's
   own processes, for grayscale-PNG builds of two sizes on Ray with 2 CPUs
   (and on the local executor for comparison).

Results go to ``OUT/ray_executor.json`` and a table on stdout. On a machine
shared with other work the ratios are noisy; rerun with ``--repeat 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import grey_folder, image_files, write_recipe  # noqa: E402  (the build benchmark's helpers)

REPO = Path(__file__).resolve().parents[1]

# One build in a fresh interpreter: wall seconds, rows and the driver's peak RSS.
DRIVER = """
import json, sys, time
from echocaptions.pipeline import build
from echocaptions.recipe import load_recipe
recipe_path, data_root, out, executor, workers = sys.argv[1:6]
recipe = load_recipe(recipe_path, data_root=data_root, out=out, overrides=["image.max_side=null"])
start = time.perf_counter()
result = build(recipe, workers=int(workers), executor=executor, quiet=True)
seconds = time.perf_counter() - start
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
rss = int(hwm[0].split()[1]) / 1024 if hwm else float("nan")
print(json.dumps({"seconds": seconds, "rows": result.stats["rows"], "peak_rss_mb": rss}))
"""


def one_build(recipe: Path, data: Path, out: Path, executor: str, workers: int) -> dict:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(recipe), str(data), str(out), executor, str(workers)],
        check=True, capture_output=True, text=True, env=env, cwd=REPO,
    )
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_of(repeat: int, *args) -> dict:
    runs = [one_build(*args) for _ in range(repeat)]
    return min(runs, key=lambda r: r["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000, help="images in the throughput builds")
    parser.add_argument("--memory", default="2000,10000", help="image counts of the two memory builds")
    parser.add_argument("--repeat", type=int, default=1, help="runs per throughput configuration")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    from echocaptions.synth import make_phantom

    results: dict = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "images": args.images,
    }
    configs = [("local", 1), ("local", 2), ("ray", 1), ("ray", 2)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = tmp_path / "phantom"
        layouts = [("busi", "busi", "BUSI"), ("ddti", "ddti", "DDTI"), ("aul", "aul", "AUL")]
        make_phantom(
            data, organs=["breast", "thyroid", "liver"], per_class=max(1, args.images // 9), seed=0,
            layouts=[layout for _, layout, _ in layouts],
        )
        recipe = write_recipe(tmp_path, "bench", layouts)
        files = len([f for _, _, p in layouts for f in image_files(data / p)])
        runs = {}
        for executor, workers in configs:
            r = best_of(args.repeat, recipe, data, tmp_path / "out", executor, workers)
            r["img_per_s"] = files / r["seconds"]
            runs[f"{executor}_{workers}"] = r
            print(f"  {executor} x{workers}: {r['seconds']:.1f} s, {r['img_per_s']:.0f} img/s", flush=True)
        results["throughput"] = {
            "files": files,
            "runs": runs,
            "ray_2_over_local_2": runs["ray_2"]["img_per_s"] / runs["local_2"]["img_per_s"],
            "ray_1_over_local_1": runs["ray_1"]["img_per_s"] / runs["local_1"]["img_per_s"],
            "ray_2_over_ray_1": runs["ray_2"]["img_per_s"] / runs["ray_1"]["img_per_s"],
            "local_2_over_local_1": runs["local_2"]["img_per_s"] / runs["local_1"]["img_per_s"],
        }
        shutil.rmtree(data)

        small_n, large_n = (int(n) for n in args.memory.split(","))
        grey_recipe = write_recipe(tmp_path, "grey", [("grey", "imagefolder", ".")])
        memory: dict = {"small_images": small_n, "large_images": large_n}
        for label, n, seed in (("small", small_n, 1), ("large", large_n, 2)):
            folder = grey_folder(tmp_path / f"grey_{label}", n, (96, 128), seed=seed)
            for executor in ("ray", "local"):
                r = one_build(grey_recipe, folder, tmp_path / "mem", executor, 2)
                memory[f"{executor}_{label}_peak_rss_mb"] = r["peak_rss_mb"]
                print(f"  {executor} x2, {n} grey images: driver peak RSS {r['peak_rss_mb']:.0f} MiB", flush=True)
            shutil.rmtree(folder)
        for executor in ("ray", "local"):
            memory[f"{executor}_ratio_large_to_small"] = (
                memory[f"{executor}_large_peak_rss_mb"] / memory[f"{executor}_small_peak_rss_mb"]
            )
        results["memory"] = memory
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_executor.json").write_text(json.dumps(results, indent=2) + "\n")
    tp, mem = results["throughput"], results["memory"]
    rows = [
        ("Ray 2 CPUs / local 2 workers", tp["ray_2_over_local_2"], ">= 0.7"),
        ("Ray 1 CPU / local 1 worker", tp["ray_1_over_local_1"], ""),
        ("Ray 2 CPUs / Ray 1 CPU (scaling)", tp["ray_2_over_ray_1"], ""),
        ("local 2 workers / local 1 worker (scaling)", tp["local_2_over_local_1"], ""),
        (f"Ray driver peak RSS {large_n} / {small_n} images", mem["ray_ratio_large_to_small"], "<= 1.2"),
        (f"local peak RSS {large_n} / {small_n} images", mem["local_ratio_large_to_small"], ""),
    ]
    print(f"{'measure':46s} {'value':>8s}  target")
    for name, value, target in rows:
        print(f"{name:46s} {value:8.2f}  {target}")
    print(
        f"Ray driver RSS {mem['ray_small_peak_rss_mb']:.0f} -> {mem['ray_large_peak_rss_mb']:.0f} MiB; "
        f"local {mem['local_small_peak_rss_mb']:.0f} -> {mem['local_large_peak_rss_mb']:.0f} MiB"
    )
    print(f"results: {args.out / 'ray_executor.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
