"""Reading uploaded tables: CSV/TSV, Parquet and Excel.

CSV/TSV: any of , ; tab | as delimiter (sniffed), decimal commas, UTF-8 with or without BOM, latin-1
fallback. Every problem is a :class:`~core.errors.DataError` whose message names it.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import PurePosixPath

import pandas as pd

from core.errors import DataError

__all__ = ["load_table"]

DEFAULT_MAX_ROWS = 2_000_000
_DECIMAL_COMMA = re.compile(r"(^|[;\t|])\s*-?\d+,\d+\s*($|[;\t|])", re.MULTILINE)


def load_table(data: bytes, filename: str, *, max_rows: int = DEFAULT_MAX_ROWS) -> pd.DataFrame:
    """Read an uploaded table.

    Args:
        data: The file's bytes.
        filename: Its name (a hint; the content decides).
        max_rows: Row cap; larger tables are refused (explain them with the batch command instead).

    Raises:
        DataError: Empty, header only, not a table, duplicate column names, or over the row cap.
    """
    if not data or not data.strip():
        raise DataError(f"The data file {filename!r} is empty. Upload a CSV, Parquet or Excel table with a header row.")
    if data[:4] == b"PAR1":
        frame = _read_parquet(data, filename)
    elif data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":  # the pre-2007 Excel format (.xls)
        raise DataError(f"{filename!r} is an old-format Excel workbook (.xls); save it as .xlsx or CSV, then upload.")
    elif data[:4] == b"PK\x03\x04":
        frame = _read_excel(data, filename)
    else:
        frame = _read_text(data, filename)
    return _validate(frame, filename, max_rows)


def _read_parquet(data: bytes, filename: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise DataError(f"The Parquet file {filename!r} is damaged or truncated ({type(exc).__name__}).") from exc


def _read_excel(data: bytes, filename: str) -> pd.DataFrame:
    try:
        return pd.read_excel(io.BytesIO(data), sheet_name=0)
    except Exception as exc:
        raise DataError(
            f"{filename!r} is not a readable Excel workbook ({type(exc).__name__}); export the sheet as CSV."
        ) from exc


def _decode(data: bytes, filename: str) -> str:
    if b"\x00" in data[:4096]:
        raise DataError(f"{filename!r} is not a text table (it contains binary data). Upload a CSV, Parquet or Excel.")
    return _text(data)[0]


def _text(data: bytes) -> tuple[str, str]:
    """The bytes decoded as UTF-8 (with or without BOM), else latin-1 (which decodes any bytes), and which."""
    try:
        return data.decode("utf-8-sig"), "utf-8-sig"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def sniff_text_table(head: bytes, filename: str) -> tuple[str, str, str]:
    """Delimiter, decimal mark and encoding of a text table from its first bytes (used by batch runs)."""
    head = head[: head.rfind(b"\n") + 1] or head  # whole lines only: no multi-byte character cut in half
    text, encoding = _text(head)
    sep, decimal = _dialect(text, filename)
    return sep, decimal, encoding


def _dialect(text: str, filename: str) -> tuple[str, str]:
    head = "\n".join(text.splitlines()[:50])
    suffix = PurePosixPath(filename.lower()).suffix
    try:
        sep = csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        sep = "\t" if suffix in (".tsv", ".tab") else ","
    decimal = "," if sep != "," and _DECIMAL_COMMA.search(head) else "."
    return sep, decimal


def _read_text(data: bytes, filename: str) -> pd.DataFrame:
    text = _decode(data, filename)
    sep, decimal = _dialect(text, filename)
    header = next(csv.reader(io.StringIO(text), delimiter=sep), [])
    names = [h.strip() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(
            f"The table has duplicate column names: {', '.join(map(repr, dupes))}. Rename them and upload again."
        )
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{filename!r} is not a well-formed table: {str(exc).splitlines()[0]}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _validate(frame: pd.DataFrame, filename: str, max_rows: int) -> pd.DataFrame:
    names = [str(c) for c in frame.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(
            f"The table has duplicate column names: {', '.join(map(repr, dupes))}. Rename them and upload again."
        )
    if frame.shape[1] == 0:
        raise DataError(f"{filename!r} has no columns. Upload a table with a header row.")
    if len(frame) == 0:
        raise DataError(f"{filename!r} has a header but no rows. Upload a table with data rows.")
    if len(frame) > max_rows:
        raise DataError(
            f"{filename!r} has {len(frame):,} rows, over this server's cap of {max_rows:,}; upload a sample, or "
            "explain the whole table with `modellens explain MODEL DATA --out DIR` (Dask)."
        )
    unnamed = [n for n in names if n.startswith("Unnamed: ")]
    if len(unnamed) == len(names):
        raise DataError(f"{filename!r} has no header row. Add column names as the first line.")
    frame.columns = names
    return frame.reset_index(drop=True)
