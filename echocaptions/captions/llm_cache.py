"""On-disk cache of LLM answers, keyed by a hash of the whole request.

A request is the JSON body sent to ``/v1/chat/completions`` (model, messages,
temperature, seed, max_tokens, response_format), without the server address,
so moving the server changes nothing. The key is the sha256 of its canonical
JSON (sorted keys, no spaces). Every answer is committed as it arrives, so a
build stopped with Ctrl-C and resumed sends only what was never answered.

SQLite in WAL mode: one connection per process, guarded by a lock, so threads
and coroutines of one process share it; other processes may read meanwhile.
The object pickles as its path and reopens on first use.
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

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
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

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
