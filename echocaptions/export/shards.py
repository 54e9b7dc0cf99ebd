"""Deterministic tar shards and the export manifest that makes an export resumable.

A tar shard is written under a temporary name and renamed when complete, with
fixed member metadata (mtime 0, uid/gid 0, no user names, mode 0644) in the
order the samples come, so the same build exports to byte-identical shards.
``manifest.json`` in the destination holds the export's settings (format,
strategy, splits, shard size, the build's fingerprint) and every finished
file with its size and SHA-256. A rerun of the same command checks those
files and writes only what is missing; a destination that holds anything else
is refused before any work.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from echocaptions.export.build import ExportError
from echocaptions.io import temporary_name, write_bytes
from echocaptions.publish.build import Build, listing

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
TAR_MTIME = 0
_COPY_BUFFER = 1 << 20


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, data)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_COPY_BUFFER), b""):
            digest.update(block)
    return digest.hexdigest()


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = TAR_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


_TEMPLATE = _tarinfo("x", 0).tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
_MAX_SIZE = 8**11 - 1


def tar_header(name: str, size: int) -> bytes:
    """The GNU-format header ``tarfile`` writes for a regular file with the fixed metadata.

    Only the name, size and checksum differ between members, so they are set
    in a header made once; a name over 100 bytes (a long-name record) or a
    size past 8 GiB goes through ``TarInfo.tobuf``.
    """
    raw = name.encode("utf-8")
    if len(raw) > 100 or size > _MAX_SIZE:
        return _tarinfo(name, size).tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    head = b"".join((raw.ljust(100, b"\0"), _TEMPLATE[100:124], b"%011o\0" % size, _TEMPLATE[136:148], b" " * 8,
                     _TEMPLATE[156:]))
    return b"".join((head[:148], b"%06o\0" % sum(head), head[155:]))


class TarShard:
    """One tar file being written: members in call order, renamed into place by ``close``.

    The archive is written as ``tarfile`` writes it (a GNU-format header per
    member, data padded to 512 bytes, two zero blocks and padding to a 10 KiB
    record at the end), without a ``TarFile`` object: a header costs one
    ``tobuf`` call and a member one write, and the SHA-256 is taken on the way.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = temporary_name(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Stays open across add() calls; close() or abort() closes it.
        self._file = open(self.tmp, "wb")  # noqa: SIM115
        self._digest = hashlib.sha256()
        self._size = 0

    def _write(self, data: bytes) -> None:
        self._digest.update(data)
        self._file.write(data)
        self._size += len(data)

    def add(self, name: str, data: bytes) -> None:
        header = tar_header(name, len(data))
        self._write(b"".join((header, data, bytes(-len(data) % tarfile.BLOCKSIZE))))

    def close(self) -> dict[str, Any]:
        """Finish the archive, rename it into place; its size and SHA-256."""
        end = 2 * tarfile.BLOCKSIZE
        self._write(bytes(end + (-(self._size + end) % tarfile.RECORDSIZE)))
        self._file.close()
        os.replace(self.tmp, self.path)
        return {"bytes": self._size, "sha256": self._digest.hexdigest()}

    def abort(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)


class ExportState:
    """The destination's ``manifest.json``: settings, finished files, and whether it is complete."""

    def __init__(self, dest: Path, settings: dict[str, Any], files: dict[str, dict[str, Any]]) -> None:
        self.dest = dest
        self.settings = settings
        self.files = files
        self.resumed = len(files)
        self.complete = False
        self.summary: dict[str, Any] = {}

    @classmethod
    def prepare(cls, dest: Path, build: Build, settings: dict[str, Any]) -> ExportState:
        """Check the destination and load what a previous run of the same export finished."""
        dest = Path(dest).absolute()
        root = build.path.resolve()
        resolved = dest.resolve()
        if resolved == root or root in resolved.parents:
            raise ExportError(
                f"--dest {dest} is inside the build {build.path}; export to a folder outside it "
                "(the build folder is what `datasets.load_dataset` and `echocaptions publish` read)"
            )
        if dest.exists() and not dest.is_dir():
            raise ExportError(f"--dest {dest} is a file; pass a new or empty folder")
        settings = {"version": MANIFEST_VERSION, **settings, "build": build.fingerprint}
        manifest = dest / MANIFEST
        if dest.is_dir() and any(dest.iterdir()):
            if not manifest.is_file():
                raise ExportError(
                    f"--dest {dest} is not empty (it holds {listing(dest)}) and is not an export of this command; "
                    "pass a new or empty folder"
                )
            try:
                old = json.loads(manifest.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ExportError(f"{manifest}: not valid JSON ({exc}); export to a new folder") from exc
            before = old.get("settings") or {}
            if before != settings:
                changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
                diff = "; ".join(f"{k}: {before.get(k)!r} there, {settings.get(k)!r} now" for k in changed)
                hint = " (the build changed since that export)" if "build" in changed else ""
                raise ExportError(
                    f"--dest {dest} holds another export ({diff}){hint}; rerun that export's command to "
                    "resume it, or pass a new or empty folder"
                )
            state = cls(dest, settings, {})
            recorded = old.get("files") or {}
            state._verify(recorded)
            state.summary = old.get("summary") or {}
            state.complete = bool(old.get("complete")) and len(state.files) == len(recorded)
            for tmp in sorted(dest.rglob("*.tmp")):
                tmp.unlink()
            return state
        dest.mkdir(parents=True, exist_ok=True)
        state = cls(dest, settings, {})
        state.save()
        return state

    def _verify(self, files: dict[str, dict[str, Any]]) -> None:
        """Keep the recorded files that are on disk with their recorded size and SHA-256."""
        for rel, info in sorted(files.items()):
            path = self.dest / rel
            if path.is_file() and path.stat().st_size == info.get("bytes") and file_sha256(path) == info.get("sha256"):
                self.files[rel] = info
        self.resumed = len(self.files)

    def done(self, rel: str) -> bool:
        return rel in self.files

    def record(self, rel: str, info: dict[str, Any]) -> None:
        self.files[rel] = info
        self.save()

    def write_file(self, rel: str, data: bytes, **extra: Any) -> None:
        """Write a small file atomically and record it."""
        write_atomic(self.dest / rel, data)
        self.record(rel, {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra})

    def finish(self, summary: dict[str, Any]) -> None:
        self.complete = True
        self.summary = summary
        self.save()

    def save(self) -> None:
        body = {
            "settings": self.settings,
            "complete": self.complete,
            "summary": self.summary,
            "files": dict(sorted(self.files.items())),
        }
        write_atomic(self.dest / MANIFEST, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode("utf-8"))


class ShardSeries:
    """Numbered tar shards of ``per_shard`` samples each; shards the manifest has are not rewritten.

    Sample ``n`` always lands in shard ``n // per_shard``, so a rerun walks the
    same samples, skips the finished shards and writes the others to the same bytes.
    """

    def __init__(self, state: ExportState, name_of: Callable[[int], str], per_shard: int) -> None:
        self.state = state
        self.name_of = name_of
        self.per_shard = per_shard
        self.samples = 0
        self.shards: dict[str, int] = {}
        self._open: TarShard | None = None
        self._in_shard = 0

    def add(self, members: Sequence[tuple[str, bytes]]) -> None:
        if self._in_shard == 0:
            name = self.name_of(len(self.shards))
            self._open = None if self.state.done(name) else TarShard(self.state.dest / name)
        if self._open is not None:
            for member, data in members:
                self._open.add(member, data)
        self._in_shard += 1
        self.samples += 1
        if self._in_shard == self.per_shard:
            self._finish()

    def _finish(self) -> None:
        name = self.name_of(len(self.shards))
        if self._open is not None:
            info = self._open.close()
            self.state.record(name, {**info, "samples": self._in_shard})
            self._open = None
        self.shards[name] = self._in_shard
        self._in_shard = 0

    def close(self) -> dict[str, int]:
        """Finish the last shard; the sample count of every shard, by name."""
        if self._in_shard:
            self._finish()
        return self.shards

    def abort(self) -> None:
        if self._open is not None:
            self._open.abort()
            self._open = None
