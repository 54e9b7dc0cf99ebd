"""Train CLIP models per caption strategy on an echocaptions build and compare them as the study does.

``python train_min/run.py --data BUILD`` reads the build with ``datasets`` and
runs the grid strategies x text towers (``clip``, ``hf:NAME``) x fine-tuning
modes x seeds from the same initial weights (open_clip configs, pretrained
tags, ``hf-hub:`` or ``local-dir:`` models), on the same images in the same
order, beside baselines evaluated without training. Each model is evaluated
with its own preprocessing: paired alignment, retrieval, zero-shot with the
study's and with held-out prompts, linear and few-shot probes (within each
held-out set by stratified folds), with paired bootstrap intervals between
strategies. ``--study FILE`` reads the options from a JSON or YAML file.
"""
