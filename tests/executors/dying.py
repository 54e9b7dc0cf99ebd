"""Shard functions whose worker dies the first time it meets chosen shards (for retry tests).

Ray workers import it by name, so it lives in a module rather than in the test.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from echocaptions.captions.stage import CaptionTask, run_caption_shard
from echocaptions.imaging.stage import ShardTask, run_shard


def run_shard_dying_once(marker_dir: str, indices: tuple[int, ...], task: ShardTask) -> dict:
    """``run_shard``, except that the worker is killed midway through each chosen shard once.

    Before dying it leaves a half-written staged file, as a worker killed while
    writing would; a marker file records the death so that the retry succeeds.
    """
    marker = Path(marker_dir) / f"{task.index:05d}.died"
    if task.index in indices and not marker.exists():
        staged = Path(task.staged_path)
        staged.with_name(f".{staged.name}.{os.getpid()}.tmp").write_bytes(b"PAR1 half a shard")
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return run_shard(task)


def run_caption_shard_dying_once(marker_dir: str, indices: tuple[int, ...], task: CaptionTask) -> dict:
    """``run_caption_shard``, except that the worker is killed before writing each chosen shard once.

    It leaves a half-written captioned file and a done marker that does not
    match, as a worker killed while writing would.
    """
    marker = Path(marker_dir) / f"{task.index:05d}.caption.died"
    if task.index in indices and not marker.exists():
        out = Path(task.out_path)
        out.with_name(f".{out.name}.{os.getpid()}.tmp").write_bytes(b"PAR1 half a shard")
        Path(task.done_path).write_text('{"fingerprint": "from an earlier attempt"}')
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return run_caption_shard(task)


def run_caption_shard_dying_mid_llm(marker_dir: str, indices: tuple[int, ...], task: CaptionTask) -> dict:
    """``run_caption_shard``, except that the worker is killed once per chosen shard, right after
    the shard's second LLM answer is committed to its cache (requests are in flight then)."""
    marker = Path(marker_dir) / f"{task.index:05d}.llm.died"
    if task.index in indices and not marker.exists():
        from echocaptions.captions.llm import cache as llm_cache

        put = llm_cache.LayeredCache.put
        committed: list[str] = []

        def dying_put(self, key, *args, **kwargs):
            put(self, key, *args, **kwargs)
            committed.append(key)
            if len(committed) == 2:
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)

        llm_cache.LayeredCache.put = dying_put
    return run_caption_shard(task)
