"""De-identification: planted-PHI recall, clinical-term false removals, and speed, in one run.

    python benchmarks/deid.py [--n 1000] [--seed 0] [--no-ner]

Phantom reports (every organ and label, drawn in turn) carry PHI whose exact
strings are known; recall is the share of those strings absent after
scrubbing. The false-removal rate is the share of the test suite's clinical
terms that scrubbing changes. Speed is reports per second on one core,
patterns only, then with spaCy NER when a pipeline is installed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from echocaptions.captions.reports.deid import Deidentifier
from echocaptions.synth.reports import _FINDINGS, make_report, sample_findings

# The test suite's clinical phrases, one a line ('#' starts a comment line).
CLINICAL_TERMS_FILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "clinical_terms.txt"
CLINICAL_TERMS = [
    line.strip()
    for line in CLINICAL_TERMS_FILE.read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def phantom_reports(n: int, seed: int) -> list:
    pairs = [(organ, label) for organ, labels in _FINDINGS.items() for label in labels]
    out = []
    for k in range(n):
        organ, label = pairs[k % len(pairs)]
        rng = np.random.default_rng(seed + k)
        out.append(make_report(organ, label, sample_findings(organ, label, rng), rng))
    return out


def measure(deid: Deidentifier, reports: list) -> dict[str, float]:
    deid.scrub(reports[0].text)
    t0 = time.perf_counter()
    outs = [deid.scrub(r.text).text for r in reports]
    seconds = time.perf_counter() - t0
    planted = sum(len(r.phi) for r in reports)
    leaked = sum(p in out for r, out in zip(reports, outs, strict=True) for p in r.phi)
    eponyms = sum(len(r.eponyms) for r in reports)
    lost = sum(e not in out for r, out in zip(reports, outs, strict=True) for e in r.eponyms)
    changed = sum(deid.scrub(t).text != t for t in CLINICAL_TERMS)
    return {
        "planted_phi": planted,
        "phi_recall": (planted - leaked) / planted,
        "eponyms_kept": (eponyms - lost) / max(eponyms, 1),
        "clinical_terms": len(CLINICAL_TERMS),
        "false_removal_rate": changed / len(CLINICAL_TERMS),
        "reports_per_s": len(reports) / seconds,
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ner", action="store_true")
    args = parser.parse_args(argv)
    reports = phantom_reports(args.n, args.seed)
    results = {"patterns": measure(Deidentifier(use_ner=False), reports)}
    ner = Deidentifier(use_ner=None if not args.no_ner else False)
    if ner.use_ner:
        results["ner"] = measure(ner, reports)
    print(json.dumps({"n": args.n, **results}, indent=2))
    print(f"\n{'mode':<10}{'PHI recall':>12}{'eponyms kept':>14}{'false removals':>16}{'reports/s':>11}")
    for mode, r in results.items():
        print(f"{mode:<10}{r['phi_recall']:>12.2%}{r['eponyms_kept']:>14.2%}"
              f"{r['false_removal_rate']:>16.2%}{r['reports_per_s']:>11.0f}")
    return results


if __name__ == "__main__":
    main()
