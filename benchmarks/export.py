"""Export throughput and memory: ``echocaptions export --to webdataset`` against a bare tar loop.

    python benchmarks/export.py [--scale 8] [--large 40] [--repeat 3]

Builds the demo recipe once, then makes larger builds from it by repeating
its train rows under new ids (same PNG bytes, same Parquet schema). The bare
loop reads the same Parquet shards in batches and copies each PNG into tar
files of the same shard size, nothing else: the ceiling for moving those
bytes. The export also writes each sample's caption and JSON metadata,
fixes tar metadata and hashes every shard. Both run alternately ``--repeat``
times in this process on the ``--scale`` build; the best of each is kept.
Peak memory is the export's own peak RSS (VmHWM), in a fresh process each
time, on the ``--scale`` and ``--large`` builds: the lowest of ``--repeat``
runs, since the allocators' timing adds tens of MB of noise to any one run.
Targets: throughput ≥ 0.5× the bare loop; peak RSS of the large export ≤ 1.2×
the small one.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from echocaptions.export import export  # noqa: E402

PER_SHARD = 1000
ROWS_PER_FILE = 500


def demo_build(root: Path) -> Path:
    from echocaptions.pipeline import build
    from echocaptions.recipe import load_recipe

    recipe = load_recipe("demo", data_root=root / "phantom", out=root / "demo")
    return build(recipe, workers=2, quiet=True).out


def scaled_build(demo: Path, out: Path, times: int) -> tuple[Path, int, int]:
    """A build of ``times`` copies of the demo's train rows; its rows and image bytes."""
    table = pa.concat_tables(pq.read_table(p) for p in sorted((demo / "data").glob("train-*.parquet")))
    schema = table.schema
    copies = []
    for j in range(times):
        ids = pa.array([f"{i}-r{j:04d}" for i in table.column("id").to_pylist()])
        copies.append(table.set_column(schema.get_field_index("id"), schema.field("id"), ids))
    rows = pa.concat_tables(copies)
    (out / "data").mkdir(parents=True)
    files = -(-rows.num_rows // ROWS_PER_FILE)
    for k in range(files):
        part = rows.slice(k * ROWS_PER_FILE, ROWS_PER_FILE)
        pq.write_table(part, out / "data" / f"train-{k:05d}-of-{files:05d}.parquet", row_group_size=100)
    stats = json.loads((demo / "stats.json").read_text())
    stats["splits"] = {"train": rows.num_rows}
    (out / "stats.json").write_text(json.dumps(stats))
    image_bytes = sum(len(r["bytes"]) for r in rows.column("image").to_pylist())
    return out, rows.num_rows, image_bytes


def bare_loop(build: Path, dest: Path) -> float:
    """Seconds to copy every PNG of the train split into tar files of PER_SHARD images."""
    start = time.perf_counter()
    n = 0
    tar = None
    for shard in sorted((build / "data").glob("train-*.parquet")):
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=64, columns=["id", "image"]):
            for row in batch.to_pylist():
                if n % PER_SHARD == 0:
                    if tar is not None:
                        tar.close()
                    tar = tarfile.open(dest / f"train-{n // PER_SHARD:06d}.tar", "w")  # noqa: SIM115
                data = row["image"]["bytes"]
                info = tarfile.TarInfo(f"{row['id']}.png")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                n += 1
    if tar is not None:
        tar.close()
    return time.perf_counter() - start


def run_export(build: Path, dest: Path) -> float:
    start = time.perf_counter()
    export(build, "webdataset", "template_only", splits=["train"], dest=dest, samples_per_shard=PER_SHARD)
    return time.perf_counter() - start


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
PEAK = """
import sys
from echocaptions.export import export
export(sys.argv[1], "webdataset", "template_only", splits=["train"], dest=sys.argv[2], samples_per_shard={n})
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")][0])
"""


def peak_rss_mb(build: Path, dest: Path) -> float:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", PEAK.format(n=PER_SHARD), str(build), str(dest)],
                         capture_output=True, text=True, check=True, cwd=root)
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=8, help="copies of the demo's train rows for the timed build")
    p.add_argument("--large", type=int, default=80, help="copies for the large build of the memory check")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        demo = demo_build(root)
        small, rows, nbytes = scaled_build(demo, root / "small", args.scale)
        bare, ours = [], []
        for i in range(args.repeat):
            for name, fn, times in (("bare", bare_loop, bare), ("export", run_export, ours)):
                dest = root / f"{name}-{i}"
                dest.mkdir()
                times.append(fn(small, dest))
                shutil.rmtree(dest)
        large, large_rows, large_bytes = scaled_build(demo, root / "large", args.large)
        peaks: dict[Path, list[float]] = {small: [], large: []}
        for _ in range(args.repeat):
            for build, runs in peaks.items():
                runs.append(peak_rss_mb(build, root / "rss"))
                shutil.rmtree(root / "rss")
        rss_small, rss_large = min(peaks[small]), min(peaks[large])
    mb = nbytes / 1e6
    result = {
        "rows": rows, "image_mb": round(mb, 1),
        "bare_mb_per_s": round(mb / min(bare), 1), "export_mb_per_s": round(mb / min(ours), 1),
        "export_images_per_s": round(rows / min(ours)),
        "ratio": round(min(bare) / min(ours), 2), "ratio_target": 0.5,
        "peak_rss_mb": {f"{rows} rows": round(rss_small), f"{large_rows} rows": round(rss_large)},
        "large_image_mb": round(large_bytes / 1e6), "peak_rss_ratio": round(rss_large / rss_small, 2),
        "peak_rss_target": 1.2,
    }
    print(json.dumps(result, indent=2))
    print(f"export / bare tar loop: {result['ratio']}x (target >= 0.5x); "
          f"peak RSS {large_rows} vs {rows} rows: {result['peak_rss_ratio']}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
