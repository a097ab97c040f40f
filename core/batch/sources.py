"""Reading a batch run's table: a local path or an fsspec URL, one file or a folder of parts."""

import hashlib
from typing import Any, cast

from core.errors import DataError

__all__ = ["data_fingerprint", "filesystem", "open_table"]


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and path of ``url`` (a local path or ``s3://``, ``gs://``, ``abfs://`` …)."""
    import fsspec

    try:
        return cast("tuple[Any, str]", fsspec.core.url_to_fs(url, **(storage_options or {})))
    except (ImportError, ValueError) as exc:
        scheme = url.split("://", 1)[0]
        raise DataError(
            f"Cannot open {url!r}: the '{scheme}' filesystem needs an extra package (see README: "
            f"'Explaining millions of rows') — {exc}."
        ) from exc


def _files(url: str, storage_options: dict[str, Any] | None) -> list[str]:
    fs, path = filesystem(url, storage_options)
    if any(ch in path for ch in "*?["):
        found = sorted(fs.glob(path))
    elif fs.isdir(path):
        found = sorted(p for p in fs.find(path) if p.endswith((".parquet", ".pq", ".csv", ".tsv")))
    elif fs.exists(path):
        found = [path]
    else:
        found = []
    if not found:
        raise DataError(f"No data found at {url!r}: give a CSV or Parquet file, a folder of them, or a glob.")
    return [fs.unstrip_protocol(p) if "://" in url else p for p in found]


def data_fingerprint(url: str, storage_options: dict[str, Any] | None = None) -> str:
    """``sha256:<hex>`` of a single local file's content, else a hash of every file's path, size and mtime/etag."""
    files = _files(url, storage_options)
    fs, _ = filesystem(url, storage_options)
    if len(files) == 1 and "://" not in url:
        digest = hashlib.sha256()
        with open(files[0], "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
        return "sha256:" + digest.hexdigest()
    parts = []
    for f in files:
        info = fs.info(f)
        parts.append(f"{f}|{info.get('size')}|{info.get('mtime') or info.get('ETag') or info.get('etag') or ''}")
    return "meta:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


def open_table(url: str, storage_options: dict[str, Any] | None = None) -> Any:
    """The table as a Dask DataFrame (CSV/TSV or Parquet: a file, a folder or a glob, local or fsspec URL)."""
    import dask.dataframe as dd
    import fsspec

    from core.data.tables import sniff_text_table

    files = _files(url, storage_options)
    try:
        if all(f.endswith((".parquet", ".pq")) for f in files):
            return dd.read_parquet(files, storage_options=storage_options or None)
        with fsspec.open(files[0], "rb", **(storage_options or {})) as fh:  # the dialect of the upload reader
            sep, decimal, encoding = sniff_text_table(fh.read(1 << 16), files[0])
        return dd.read_csv(
            files,
            sep=sep,
            decimal=decimal,
            encoding=encoding,
            blocksize="64MB",
            storage_options=storage_options or None,
            assume_missing=True,
            sample_rows=1000,
        )
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read {url!r} as a table ({exc}).") from exc
