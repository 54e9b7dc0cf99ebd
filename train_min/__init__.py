"""Train one small CLIP per caption strategy on an echocaptions build and compare them.

``python train_min/run.py --data BUILD`` reads the build with ``datasets``,
trains an open_clip model per strategy and seed from the same initial weights
on the same images in the same order, and evaluates alignment, retrieval,
zero-shot classification, linear probes and few-shot probes.
"""
