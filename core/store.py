"""The share store: a directory of content-addressed blobs and an SQLite index.

Layout under ``root`` (``MODELLENS_STORE``)::

    blobs/ab/abcdef…      model, data and explanation bytes, named by their sha256 (stored once)
    index.sqlite          one row per share: id, title, created, expires, owner, blob hashes, settings

A save writes every blob first (temporary file, fsync, rename: a blob is either whole or absent) and the
index row last, in one SQLite transaction. A crash at any point leaves either the whole share or none;
orphan blobs are harmless and collected by :meth:`ShareStore.collect_garbage`. Share ids carry 192 random
bits. Shared models are still loaded only through the safe loader, in a worker: the store never unpickles.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ShareError
from core.fileio import write_atomic

__all__ = ["Share", "ShareRecord", "ShareStore", "pack_arrays", "unpack_arrays"]

ID_RE = re.compile(r"^[A-Za-z0-9_-]{32}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    owner TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    model_sha TEXT NOT NULL,
    model_name TEXT NOT NULL,
    data_sha TEXT NOT NULL,
    data_name TEXT NOT NULL,
    result_sha TEXT,
    settings TEXT NOT NULL,
    model_bytes INTEGER NOT NULL,
    data_bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS shares_owner ON shares(owner, created);
"""


@dataclass(frozen=True)
class ShareRecord:
    """One share's index row."""

    id: str
    title: str
    owner: str
    created: float
    expires: float
    model_sha: str
    model_name: str
    data_sha: str
    data_name: str
    result_sha: str | None
    settings: dict[str, Any]
    model_bytes: int
    data_bytes: int

    @property
    def expired(self) -> bool:
        """True once the expiry time has passed."""
        return time.time() >= self.expires


@dataclass(frozen=True)
class Share:
    """A share opened for viewing: its record and its bytes."""

    record: ShareRecord
    model: bytes
    data: bytes
    result: bytes | None


def pack_arrays(arrays: dict[str, np.ndarray | None], meta: dict[str, Any]) -> bytes:
    """Arrays and JSON metadata as one ``.npz`` (no pickles: object arrays are refused)."""
    buf = io.BytesIO()
    present = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
    for name, array in present.items():
        if array.dtype.hasobject:
            raise ValueError(f"array {name!r} has an object dtype; only plain numbers may be stored")
    header = np.frombuffer(json.dumps(meta, default=str).encode(), dtype=np.uint8)
    np.savez_compressed(buf, __meta__=header, **present)  # type: ignore[arg-type]  # **present: arrays, not allow_pickle
    return buf.getvalue()


def unpack_arrays(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Inverse of :func:`pack_arrays` (read with ``allow_pickle=False``)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "__meta__"}
        meta = json.loads(npz["__meta__"].tobytes().decode())
    return arrays, meta


class ShareStore:
    """Persistent, crash-consistent store of shares (safe for threads and processes).

    Args:
        root: Directory of the store (created if missing).
        default_days: Lifetime of a share when none is given.
    """

    def __init__(self, root: Path, *, default_days: int = 30):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.default_days = default_days
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent in the file: readers never block the writer
            db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.root / "index.sqlite", timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    # -- blobs ---------------------------------------------------------------------------------------
    def _blob_path(self, sha: str) -> Path:
        return self.blobs / sha[:2] / sha

    def put_blob(self, data: bytes) -> str:
        """Store bytes under their sha256 (atomically, once) and return the hash."""
        sha = hashlib.sha256(data).hexdigest()
        path = self._blob_path(sha)
        if path.exists() and path.stat().st_size == len(data):
            return sha
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        return sha

    def get_blob(self, sha: str) -> bytes:
        """The bytes of a blob, checked against their hash."""
        try:
            data = self._blob_path(sha).read_bytes()
        except FileNotFoundError as exc:
            raise ShareError("This shared view's files are missing from the store; ask for a new link.") from exc
        if hashlib.sha256(data).hexdigest() != sha:
            raise ShareError("This shared view's files are damaged in the store; ask for a new link.")
        return data

    # -- shares -----------------------------------------------------------------------------------------
    def save(
        self,
        *,
        model: bytes,
        model_name: str,
        data: bytes,
        data_name: str,
        settings: dict[str, Any],
        result: bytes | None = None,
        title: str = "",
        owner: str = "local",
        days: float | None = None,
    ) -> ShareRecord:
        """Save a share: blobs first, the index row last (all or nothing). Returns its record."""
        model_sha, data_sha = self.put_blob(model), self.put_blob(data)
        result_sha = self.put_blob(result) if result is not None else None
        now = time.time()
        record = ShareRecord(
            id=secrets.token_urlsafe(24),
            title=title.strip()[:200] or f"{model_name} on {data_name}",
            owner=owner,
            created=now,
            expires=now + 86400 * (self.default_days if days is None else days),
            model_sha=model_sha,
            model_name=model_name,
            data_sha=data_sha,
            data_name=data_name,
            result_sha=result_sha,
            settings=dict(settings),
            model_bytes=len(model),
            data_bytes=len(data),
        )
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO shares VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.title,
                    record.owner,
                    record.created,
                    record.expires,
                    record.model_sha,
                    record.model_name,
                    record.data_sha,
                    record.data_name,
                    record.result_sha,
                    json.dumps(record.settings, default=str),
                    record.model_bytes,
                    record.data_bytes,
                ),
            )
            db.execute("COMMIT")
        return record

    def record(self, share_id: str) -> ShareRecord:
        """The record of a share.

        Raises:
            ShareError: Malformed, unknown or expired id (one sentence each).
        """
        if not isinstance(share_id, str) or not ID_RE.match(share_id):
            raise ShareError("This share link is malformed; check that it was copied completely.")
        with self._db() as db:
            row = db.execute("SELECT * FROM shares WHERE id = ?", (share_id,)).fetchone()
        if row is None:
            raise ShareError("This share link does not exist (it may have been deleted); ask for a new one.")
        record = _record(row)
        if record.expired:
            when = time.strftime("%d %b %Y", time.localtime(record.expires))
            raise ShareError(f"This share link expired on {when}; ask its author for a new one.")
        return record

    def open(self, share_id: str) -> Share:
        """A share with its bytes, ready to view."""
        record = self.record(share_id)
        result = self.get_blob(record.result_sha) if record.result_sha else None
        return Share(record, self.get_blob(record.model_sha), self.get_blob(record.data_sha), result)

    def shares_of(self, owner: str) -> list[ShareRecord]:
        """The owner's shares that have not expired, newest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM shares WHERE owner = ? AND expires > ? ORDER BY created DESC", (owner, time.time())
            ).fetchall()
        return [_record(r) for r in rows]

    def delete(self, share_id: str, owner: str) -> bool:
        """Delete one of the owner's shares; True when something was deleted."""
        with self._db() as db:
            cursor = db.execute("DELETE FROM shares WHERE id = ? AND owner = ?", (share_id, owner))
        return cursor.rowcount > 0

    def collect_garbage(self, *, min_age_seconds: float = 3600) -> int:
        """Remove expired shares and blobs no share refers to (older than min_age, so saves in flight survive)."""
        with self._db() as db:
            db.execute("DELETE FROM shares WHERE expires <= ?", (time.time(),))
            used: set[str] = set()
            for row in db.execute("SELECT model_sha, data_sha, result_sha FROM shares"):
                used.update(x for x in row if x)
        removed = 0
        cutoff = time.time() - min_age_seconds
        for path in self.blobs.glob("*/*"):
            if path.name not in used and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _record(row: tuple[Any, ...]) -> ShareRecord:
    """A database row as a record: the columns in the dataclass's field order, settings decoded from JSON."""
    *head, settings, model_bytes, data_bytes = row
    return ShareRecord(*head, json.loads(settings), model_bytes, data_bytes)  # type: ignore[call-arg]  # head: 10 columns
