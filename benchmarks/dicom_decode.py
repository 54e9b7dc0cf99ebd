"""DICOM decode throughput of DicomReader against a bare pydicom loop, in the same run.

    python benchmarks/dicom_decode.py [--decodes 200] [--rounds 3]

The files are the ultrasound DICOMs that pydicom and pydicom-data ship, repeated
to ``--decodes`` decodes; the comparison is made over all of them and again over
the single-frame ones only, where both sides decode the same pixels. The reader's side is ``DicomReader.read`` plus
``to_8bit`` (one frame, 8-bit L or RGB); the baseline is
``pydicom.dcmread(p).pixel_array`` (every frame, raw values). The best of
``--rounds`` rounds is kept for each; the ratio is reader/baseline throughput.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from echocaptions.imaging.dicom import DicomReader, dicom_frame_count
from echocaptions.imaging.normalise import to_8bit

US_FILES = (
    "examples_ybr_color.dcm",
    "examples_jpeg2k.dcm",
    "examples_palette.dcm",
    "examples_rgb_color.dcm",
    "US1_UNCR.dcm",
    "US1_J2KR.dcm",
    "gdcm-US-ALOKA-16.dcm",
    "OBXXXX1A.dcm",
    "OBXXXX1A_rle_2frame.dcm",
    "color-px.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
)


def us_files() -> list[Path]:
    """The shipped ultrasound files that are installed here."""
    found = []
    for name in US_FILES:
        path = get_testdata_file(name)
        if path:
            found.append(Path(path))
    return found


def bare(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        ds = pydicom.dcmread(path)
        ds.pixel_array  # noqa: B018
    return time.perf_counter() - start


def reader(files: list[Path]) -> float:
    dicom = DicomReader()
    start = time.perf_counter()
    for path in files:
        to_8bit(dicom.read(path))
    return time.perf_counter() - start


def _ratio(files: list[Path], decodes: int, rounds: int) -> dict[str, float]:
    repeated = (files * (decodes // len(files) + 1))[:decodes]
    reader(files), bare(files)
    t_bare = min(bare(repeated) for _ in range(rounds))
    t_reader = min(reader(repeated) for _ in range(rounds))
    return {
        "decodes": len(repeated),
        "bare_per_s": len(repeated) / t_bare,
        "reader_per_s": len(repeated) / t_reader,
        "ratio": t_bare / t_reader,
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decodes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    files = us_files()
    single = [p for p in files if dicom_frame_count(p) == 1]
    results = {
        "all": _ratio(files, args.decodes, args.rounds),
        "single_frame": _ratio(single, args.decodes, args.rounds),
    }
    print(f"Shipped ultrasound DICOMs: {len(files)} files, {len(single)} single-frame")
    print(f"{'set':14s} {'decodes':>7s} {'bare/s':>8s} {'reader/s':>9s} {'ratio':>6s}")
    for name, r in results.items():
        print(
            f"{name:14s} {r['decodes']:7.0f} {r['bare_per_s']:8.1f} {r['reader_per_s']:9.1f} "
            f"{r['ratio']:5.2f}x"
        )
    print("target: ratio >= 0.9x (reader decodes one frame to 8 bits; bare decodes all frames raw)")
    return results


if __name__ == "__main__":
    main()
