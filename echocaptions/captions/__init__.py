"""Captions, by job.

- ``reports/``: report text. De-identification (``deid``), language
  (``language``), findings read from text (``findings_text``), text-encoder
  token counts (``tokens``) and the report caption by sentence priority
  within a token budget (``caption``). No model, no network.
- ``llm/``: the LLM tier. The client (``client``: prompts, requests,
  retries, validation of answers), its on-disk answer cache (``cache``),
  translation of reports through it (``translate``), the vLLM server it
  talks to (``serve``) and the tiny model of the server test (``vllm_model``).
- ``templates``: per-organ Jinja captions from labels and findings.
- The caption stage: ``stage`` (one staged shard in, captioned columns out),
  ``report_stage`` (scrub, translate, caption and read findings per batch of
  reports), ``policy`` (every candidate and the chosen caption) and
  ``strategies`` (which candidate a strategy trains on).

Imports go one way: the stage modules use ``llm`` and ``reports``, ``llm``
uses ``reports`` and ``templates``, ``reports`` uses neither
(``ARCHITECTURE.md``; checked by the import contracts).
"""
