"""Save a small BERT with random weights and a WordPiece vocabulary of a build's captions and prompts.

    python train_min/tiny_bert.py --data BUILD --out FOLDER [--layers 2] [--width 64]

The folder is what ``transformers``' ``save_pretrained`` writes (config,
weights, tokenizer), so ``--text-tower hf:FOLDER`` takes it like any hub BERT.
It lets the BERT arm of the grid run offline on the demo; it is a BERT-shaped
text tower trained from scratch, not BioClinicalBERT (for that, pass
``--text-tower hf:emilyalsentzer/Bio_ClinicalBERT``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train_min import data, evaluate

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def vocabulary(texts: list[str]) -> list[str]:
    """Special tokens, punctuation, every lower-cased word of the texts, and single characters (with ``##``
    continuations) so that any other word still tokenises."""
    words = sorted({w for t in texts for w in re.findall(r"[a-z0-9]+", t.lower())})
    punctuation = sorted({c for t in texts for c in t if not c.isalnum() and not c.isspace()})
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789")
    return list(dict.fromkeys([*SPECIAL, *punctuation, *words, *chars, *[f"##{c}" for c in chars]]))


def save(folder: Path, texts: list[str], layers: int = 2, width: int = 64, seed: int = 0) -> Path:
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary(texts)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=width, num_hidden_layers=layers,
                                     num_attention_heads=max(1, width // 32), intermediate_size=4 * width,
                                     max_position_embeddings=128)
    torch.manual_seed(seed)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="build folder whose captions make the vocabulary")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--width", type=int, default=64)
    args = p.parse_args(argv)
    rows = data.load_rows(args.data)
    texts = [c["text"] for caps in rows.captions for c in caps if c.get("text")]
    for path in (evaluate.PROMPTS, evaluate.HELDOUT_PROMPTS):
        table = json.loads(Path(path).read_text())
        texts += [t for entry in table["organs"].values() for t in entry["templates"]]
        texts += [n for entry in table["organs"].values() for names in entry["classes"].values() for n in names]
    save(args.out, texts, args.layers, args.width)
    print(f"wrote {args.out} ({len(vocabulary(texts))} tokens): --text-tower hf:{args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
