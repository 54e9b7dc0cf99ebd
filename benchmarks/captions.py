"""Caption tiers against bare loops over the same work, in one run.

    python benchmarks/captions.py [--records 4000] [--requests 1000] [--concurrency 64]
        [--scaling-requests 400] [--scaling-concurrency 8] [--delay 0 0.02] [--out FILE]

Template tier: ``TemplateCaptioner.caption`` (vocabulary lookups, level and
phrasing choice, render, clean-up) against a bare jinja2 loop that only renders
the same macro of the same compiled template from a context built beforehand.

LLM client: ``LLMCaptioner.caption`` (prompt rendering, request, parsing,
validation against the labels) against a bare ``AsyncOpenAI`` loop sending the
same request bodies (messages, model, temperature, seed, max_tokens, taken from
the captioner) with the same concurrency to the same local stub server and
keeping the text. Each record carries a one-line report excerpt of its own, so
no two prompts are the same and the captioner, which sends identical requests
in flight only once, sends as many requests as the bare loop: a timed run
fails unless one request per record, from the captioner and from the bare
loop, reaches the stub, and unless both send the same bodies. Then a second
captioner run over the same requests with the request cache: the stub counts
what reaches it, which must be nothing.

LLM concurrency: the same captioner at concurrency 1 against concurrency N,
once per stub delay. With ``--delay`` the stub holds each answer that long,
standing in for generation time, so the ratio shows how well concurrency hides
latency; with a delay of 0 the figure is the client's own ceiling (request
building, HTTP, parsing, validation). Its requests carry an organ and a
one-line report excerpt that differs per request, so no two prompts are the
same and every request reaches the stub (identical requests in flight are sent
once; the run fails if fewer arrive); no cache, structured output off (one
request per caption).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from echocaptions.captions.llm.client import LLMCaptioner, LLMConfig, LLMRequest  # noqa: E402
from echocaptions.captions.templates import TemplateCaptioner, _variant_index  # noqa: E402
from echocaptions.schema import FINDINGS_BY_ORGAN, FINDINGS_VOCABULARY, LABELS, ORGANS  # noqa: E402
from tests.captions.openai_stub import StubServer, serve_openai  # noqa: E402


def records(n: int, seed: int = 0) -> list[dict]:
    """Records over every organ, a third with findings, a third with a label only, a third bare."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        organ = ORGANS[i % len(ORGANS)]
        kind = i % 3
        findings = {}
        if kind == 0:
            for name in rng.sample(FINDINGS_BY_ORGAN[organ], k=min(3, len(FINDINGS_BY_ORGAN[organ]))):
                findings[name] = rng.choice(FINDINGS_VOCABULARY[name])
        label = rng.choice(LABELS[organ]) if kind < 2 else None
        out.append({"record_id": f"r{i}", "organ": organ, "label": label, "findings": findings})
    return out


def bench_templates(n: int) -> dict:
    captioner = TemplateCaptioner(seed=0)
    recs = records(n)
    # The bare loop's inputs: the compiled template, the macro and a finished context per record.
    prepared = []
    for r in recs:
        entry = captioner._organ(r["organ"])
        context = captioner._context(entry, r["organ"], r["label"], r["findings"], None, None)
        cap = captioner.caption(**r)
        choices = entry.macros[cap.provenance.level]
        _, macro = choices[_variant_index(0, cap.provenance.level, r["record_id"], len(choices))]
        prepared.append((entry.template, macro, {**captioner._env.globals, **context}))

    def bare() -> float:
        start = time.perf_counter()
        for template, macro, context in prepared:
            getattr(template.make_module(context), macro)()
        return time.perf_counter() - start

    def ours() -> float:
        start = time.perf_counter()
        for r in recs:
            captioner.caption(**r)
        return time.perf_counter() - start

    bare(), ours()
    t_bare = min(bare() for _ in range(3))
    t_ours = min(ours() for _ in range(3))
    return {
        "records": n,
        "bare_jinja2_per_s": round(n / t_bare),
        "template_tier_per_s": round(n / t_ours),
        "ratio": round(t_bare / t_ours, 2),
        "target": ">= 0.5",
    }


def llm_requests(n: int) -> list[LLMRequest]:
    """The template tier's kind of records, each with a report excerpt of its own."""
    return [
        LLMRequest(
            record_id=f"bench-{i}",
            organ=r["organ"],
            label=r["label"],
            findings=r["findings"],
            report=f"Clip {i} of a routine scan.",
        )
        for i, r in enumerate(records(n, seed=1))
    ]


def _config(base_url: str, concurrency: int) -> LLMConfig:
    return LLMConfig(
        base_url=base_url, model="stub-model", concurrency=concurrency, structured="off",
        validation_retries=0, max_retries=0,
    )  # fmt: skip


def _bodies(captioner: LLMCaptioner, requests: list[LLMRequest]) -> list[dict]:
    """The body the captioner sends for each record's first caption (plain text, no cache)."""
    seed = captioner.config.seed
    messages = [captioner.messages(r, structured=False) for r in requests]
    payloads = [captioner._payload(m, seed, False) for m in messages]
    return [{key: value for key, value in p.items() if value is not None} for p in payloads]


async def _bare(base_url: str, bodies: list[dict], concurrency: int, timeout: float) -> list[str]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", timeout=timeout, max_retries=0)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> str:
        async with semaphore:
            response = await client.chat.completions.create(**body)
        return response.choices[0].message.content or ""

    try:
        return await asyncio.gather(*(one(b) for b in bodies))
    finally:
        await client.close()


def _received(stub: StubServer, before: int, n: int, who: str) -> list[str]:
    """The bodies that reached the stub since ``before`` (canonical JSON); exactly ``n`` or exit."""
    sent = stub.requests[before:]
    if len(sent) != n:
        raise SystemExit(
            f"LLM tier benchmark: {who} sent {len(sent)} requests to the stub, not one per record "
            f"({n}); the comparison is not like-for-like"
        )
    return sorted(json.dumps(body, sort_keys=True) for body in sent)


def bench_llm(n: int, concurrency: int) -> dict:
    requests = llm_requests(n)
    with serve_openai() as stub:
        captioner = LLMCaptioner(_config(stub.base_url, concurrency))
        bodies = _bodies(captioner, requests)
        distinct = len({json.dumps(b["messages"], sort_keys=True) for b in bodies})
        if distinct != n:
            raise SystemExit(
                f"LLM tier benchmark: {distinct} distinct prompts among {n} records, not {n}"
            )
        timeout = captioner.config.timeout
        captioner.caption(requests[:50])
        asyncio.run(_bare(stub.base_url, bodies[:50], concurrency, timeout))
        t_bare = t_ours = float("inf")
        for _ in range(2):
            before = stub.count
            start = time.perf_counter()
            texts = asyncio.run(_bare(stub.base_url, bodies, concurrency, timeout))
            t_bare = min(t_bare, time.perf_counter() - start)
            assert all(texts)
            sent_bare = _received(stub, before, n, "the bare AsyncOpenAI loop")
            before = stub.count
            start = time.perf_counter()
            results = LLMCaptioner(_config(stub.base_url, concurrency)).caption(requests)
            t_ours = min(t_ours, time.perf_counter() - start)
            failed = [r for r in results if not r.captions]
            if failed:
                raise RuntimeError(f"{len(failed)} requests failed, e.g. {failed[0].failures}")
            sent_ours = _received(stub, before, n, "the LLM tier")
            if sent_ours != sent_bare:
                raise SystemExit(
                    "LLM tier benchmark: the LLM tier and the bare loop sent different bodies"
                )
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "llm.sqlite"
            LLMCaptioner(_config(stub.base_url, concurrency), cache_path=cache).caption(requests)
            before = stub.count
            start = time.perf_counter()
            again = LLMCaptioner(_config(stub.base_url, concurrency), cache_path=cache).caption(requests)
            t_cached = time.perf_counter() - start
            sent_on_rerun = stub.count - before
            assert all(c.provenance.cached for r in again for c in r.captions)
    return {
        "requests": n,
        "concurrency": concurrency,
        "bare_asyncopenai_req_per_s": round(n / t_bare),
        "llm_tier_req_per_s": round(n / t_ours),
        "ratio": round(t_bare / t_ours, 2),
        "target": ">= 0.8",
        "requests_sent_bare": len(sent_bare),
        "requests_sent_llm_tier": len(sent_ours),
        "cached_rerun_req_per_s": round(n / t_cached),
        "requests_sent_on_cached_rerun": sent_on_rerun,
    }


def scaling_requests(n: int) -> list[LLMRequest]:
    """Requests over four organs, no label or findings, each with a report excerpt of its own."""
    organs = ("thyroid", "breast", "liver", "lung")
    return [
        LLMRequest(
            record_id=f"bench-{i}",
            organ=organs[i % 4],
            label=None,
            findings={},
            report=f"Clip {i} of a routine scan.",
        )
        for i in range(n)
    ]


def _rate(stub: StubServer, requests: list[LLMRequest], concurrency: int) -> float:
    """Requests per second for one captioner run without a cache; each must reach the stub."""
    before = stub.count
    start = time.perf_counter()
    results = LLMCaptioner(_config(stub.base_url, concurrency)).caption(requests)
    elapsed = time.perf_counter() - start
    failed = [r for r in results if not r.captions]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed, e.g. {failed[0].failures}")
    if stub.count - before != len(requests):
        raise RuntimeError(f"{stub.count - before} requests reached the stub, not {len(requests)}")
    return len(requests) / elapsed


def bench_llm_concurrency(n: int, concurrency: int, delays: list[float]) -> dict:
    requests = scaling_requests(n)
    rows = []
    for delay in delays:
        with serve_openai(delay=delay) as stub:
            _rate(stub, requests[:20], 2)
            one = _rate(stub, requests, 1)
            stub.max_in_flight = 0
            many = _rate(stub, requests, concurrency)
            rows.append(
                {
                    "delay_s": delay,
                    "req_per_s_c1": round(one, 1),
                    "req_per_s_cN": round(many, 1),
                    "ratio": round(many / one, 2),
                    "server_max_in_flight": stub.max_in_flight,
                }
            )
    return {"requests": n, "concurrency": concurrency, "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--scaling-requests", type=int, default=400)
    parser.add_argument("--scaling-concurrency", type=int, default=8)
    parser.add_argument("--delay", type=float, nargs="+", default=[0.0, 0.02])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    report = {
        "benchmark": "captions",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "template": bench_templates(args.records),
        "llm": bench_llm(args.requests, args.concurrency),
        "llm_concurrency": bench_llm_concurrency(
            args.scaling_requests, args.scaling_concurrency, args.delay
        ),
    }
    t, llm = report["template"], report["llm"]
    print(
        f"template tier: {t['template_tier_per_s']}/s vs bare jinja2 {t['bare_jinja2_per_s']}/s "
        f"-> {t['ratio']}x (target {t['target']})"
    )
    print(
        f"LLM tier c={llm['concurrency']}: {llm['llm_tier_req_per_s']} req/s vs bare AsyncOpenAI "
        f"{llm['bare_asyncopenai_req_per_s']} req/s -> {llm['ratio']}x (target {llm['target']}), "
        f"{llm['requests_sent_llm_tier']} vs {llm['requests_sent_bare']} requests sent; "
        f"cached rerun {llm['cached_rerun_req_per_s']} req/s, {llm['requests_sent_on_cached_rerun']} requests sent"
    )
    scaling = report["llm_concurrency"]
    for row in scaling["rows"]:
        print(
            f"LLM tier c={scaling['concurrency']} vs c=1, stub delay {row['delay_s']} s: "
            f"{row['req_per_s_cN']} vs {row['req_per_s_c1']} req/s -> {row['ratio']}x "
            f"({row['server_max_in_flight']} in flight at most)"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
