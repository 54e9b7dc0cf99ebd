"""On-disk cache of LLM answers, keyed by a hash of the whole request.

A request is the JSON body sent to ``/v1/chat/completions`` (model, messages,
temperature, seed, max_tokens, response_format), without the server address,
so moving the server changes nothing. The key is the sha256 of its canonical
JSON (sorted keys, no spaces). Every answer is committed as it arrives, so a
build stopped with Ctrl-C and resumed sends only what was never answered.

SQLite in WAL mode: one connection per process, guarded by a lock, so threads
and coroutines of one process share it; other processes may read meanwhile.
The object pickles as its path and reopens on first use.

Builds caption shard by shard in worker processes that may sit on other
machines, where SQLite's locking over a network filesystem cannot be trusted.
So processes do not share a file they write: each caption shard writes its
new answers to a cache of its own (:class:`LayeredCache`, rollback journal,
no shared memory) and reads the build's cache without locks, as an
immutable file that nobody writes while shards run; the driver folds the
caches of finished shards into the build's cache (:func:`merge_caches`), in
shard order. An unfinished shard keeps its cache for its rerun.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def canonical_json(request: dict[str, Any]) -> str:
    """The one spelling of a request that its key is computed from."""
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(request: dict[str, Any]) -> str:
    """sha256 hex digest of the request's canonical JSON (``base_url`` must not be in it)."""
    if "base_url" in request:
        raise ValueError("request_key: drop base_url from the request; the key must not depend on it")
    return hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    text: str
    finish_reason: str | None


class LLMCache:
    """Answers by request key, plus a small table of per-model facts (``meta``)."""

    def __init__(self, path: Path | str, journal: str = "WAL") -> None:
        self.path = Path(path)
        self.journal = journal
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "journal": self.journal}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state.get("journal", "WAL"))

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
                conn.execute(f"PRAGMA journal_mode={self.journal}")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise RuntimeError(
                    f"LLM cache {self.path} cannot be opened as SQLite ({exc}); "
                    "delete it or pass another cache path"
                ) from exc
            self._conn = conn
        return self._conn

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            row = self._db().execute(
                "SELECT text, finish_reason FROM answers WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else CachedAnswer(row[0], row[1])

    def put(
        self, key: str, request: dict[str, Any], text: str, finish_reason: str | None = None
    ) -> None:
        """Store one answer and commit at once."""
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    str(request.get("model", "")),
                    canonical_json(request),
                    text,
                    finish_reason,
                    time.time(),
                ),
            )
            db.commit()

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            row = self._db().execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str) -> None:
        with self._lock:
            db = self._db()
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))
            db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def checkpoint(self) -> None:
        """Move the write-ahead log into the main file, so lock-free readers see every answer."""
        if not self.path.is_file():
            return
        with self._lock:
            db = self._db()
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _FrozenCache:
    """A cache file read without locks (SQLite ``immutable``): nobody may write it meanwhile."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection | None:
        if self._conn is None and self.path.is_file():
            uri = f"{self.path.resolve().as_uri()}?immutable=1"
            try:
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                self._conn.execute("SELECT 1 FROM answers LIMIT 1")
            except sqlite3.DatabaseError as exc:
                raise RuntimeError(
                    f"LLM cache {self.path} cannot be read as SQLite ({exc}); delete it to start afresh"
                ) from exc
        return self._conn

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            db = self._db()
            row = None if db is None else db.execute(
                "SELECT text, finish_reason FROM answers WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else CachedAnswer(row[0], row[1])

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            db = self._db()
            row = None if db is None else db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class LayeredCache:
    """A shard's own cache (read and written) over the build's cache (read only, lock-free).

    It has :class:`LLMCache`'s interface; answers found in either count as
    cached, new ones go to ``own`` only.
    """

    def __init__(self, own: Path | str, base: Path | str | None) -> None:
        # One writer, maybe on a network filesystem: a rollback journal, no shared memory.
        self.own = LLMCache(own, journal="DELETE")
        self.base = _FrozenCache(base) if base is not None else None
        self.path = self.own.path

    def __getstate__(self) -> dict[str, Any]:
        return {"own": self.own.path, "base": self.base.path if self.base else None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["own"], state["base"])

    def get(self, key: str) -> CachedAnswer | None:
        hit = self.own.get(key) if self.own.path.is_file() else None
        if hit is None and self.base is not None:
            hit = self.base.get(key)
        return hit

    def put(self, key: str, request: dict[str, Any], text: str, finish_reason: str | None = None) -> None:
        self.own.put(key, request, text, finish_reason)

    def get_meta(self, name: str) -> str | None:
        value = self.own.get_meta(name) if self.own.path.is_file() else None
        if value is None and self.base is not None:
            value = self.base.get_meta(name)
        return value

    def set_meta(self, name: str, value: str) -> None:
        self.own.set_meta(name, value)

    def __len__(self) -> int:
        return len(self.own) if self.own.path.is_file() else 0

    def close(self) -> None:
        self.own.close()
        if self.base is not None:
            self.base.close()


def merge_caches(dest: Path | str, sources: list[Path]) -> int:
    """Fold shard caches into ``dest`` in the order given and delete them; answers added.

    An answer already in ``dest`` (or in an earlier source) is kept, so the
    result does not depend on which shard finished first. A shard cache that
    holds no table (its process died while creating it) has no answers and is
    deleted. ``dest`` is checkpointed, ready for lock-free readers.
    """
    target = LLMCache(dest)
    added = 0
    try:
        for path in sources:
            with target._lock:
                db = target._db()
                db.execute("ATTACH DATABASE ? AS shard", (str(path),))
                try:
                    tables = {r[0] for r in db.execute("SELECT name FROM shard.sqlite_master WHERE type = 'table'")}
                    before = db.total_changes
                    if "answers" in tables:
                        db.execute("INSERT OR IGNORE INTO answers SELECT * FROM shard.answers")
                    if "meta" in tables:
                        db.execute("INSERT OR IGNORE INTO meta SELECT * FROM shard.meta")
                    added += db.total_changes - before
                    db.commit()
                except sqlite3.DatabaseError as exc:
                    db.rollback()
                    raise RuntimeError(
                        f"LLM answer cache {path} cannot be read ({exc}); delete it (its answers will be "
                        "requested again) and rerun"
                    ) from exc
                finally:
                    db.execute("DETACH DATABASE shard")
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        target.checkpoint()
    finally:
        target.close()
    return added
