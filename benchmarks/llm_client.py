"""LLM client throughput: requests/s against the local OpenAI stub, concurrency 1 vs N.

    python benchmarks/llm_client.py [--requests 400] [--concurrency 8] [--delay 0.02] [--out FILE]

The stub (tests/captions/openai_stub.py) answers in-process on 127.0.0.1. With
``--delay`` it holds each answer that long, standing in for generation time, so
the ratio shows how well concurrency hides latency; with ``--delay 0`` the
figure is the client's own ceiling (request building, HTTP, parsing,
validation). The whole captioner is timed: prompt rendering, request, answer
parsing and validation; no cache, structured output off (one request per
caption).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from echocaptions.captions.llm import LLMCaptioner, LLMConfig, LLMRequest  # noqa: E402
from tests.captions.openai_stub import serve_openai  # noqa: E402

ORGANS = ("thyroid", "breast", "liver", "lung")


def workload(n: int) -> list[LLMRequest]:
    return [
        LLMRequest(record_id=f"bench-{i}", organ=ORGANS[i % 4], label=None, findings={}, dataset=str(i))
        for i in range(n)
    ]


def rate(base_url: str, requests: list[LLMRequest], concurrency: int) -> float:
    """Requests per second for one captioner run."""
    config = LLMConfig(
        base_url=base_url,
        model="stub-model",
        concurrency=concurrency,
        structured="off",
        validation_retries=0,
    )
    captioner = LLMCaptioner(config, cache_path=None)
    start = time.perf_counter()
    results = captioner.caption(requests)
    elapsed = time.perf_counter() - start
    bad = [r for r in results if not r.captions]
    if bad:
        raise RuntimeError(f"{len(bad)} requests failed, e.g. {bad[0].failures}")
    return len(requests) / elapsed


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay", type=float, nargs="+", default=[0.0, 0.02])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    requests = workload(args.requests)
    rows = []
    for delay in args.delay:
        with serve_openai(delay=delay) as stub:
            rate(stub.base_url, requests[:20], 2)
            one = rate(stub.base_url, requests, 1)
            many = rate(stub.base_url, requests, args.concurrency)
            rows.append(
                {
                    "delay_s": delay,
                    "req_per_s_c1": round(one, 1),
                    f"req_per_s_c{args.concurrency}": round(many, 1),
                    "ratio": round(many / one, 2),
                    "server_max_in_flight": stub.max_in_flight,
                }
            )
    report = {
        "benchmark": "llm_client",
        "requests": args.requests,
        "concurrency": args.concurrency,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rows": rows,
    }
    print(f"{'delay s':>8} {'req/s c=1':>10} {f'req/s c={args.concurrency}':>11} {'ratio':>6}")
    for row in rows:
        print(
            f"{row['delay_s']:>8} {row['req_per_s_c1']:>10} "
            f"{row[f'req_per_s_c{args.concurrency}']:>11} {row['ratio']:>6}"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
