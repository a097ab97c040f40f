"""Reading uploaded tables: CSV/TSV, Parquet and Excel.

CSV/TSV: any of , ; tab | as delimiter (sniffed), decimal commas, UTF-8 with or without BOM, latin-1
fallback. Every problem is a :class:`~core.errors.DataError` whose message names it.

This runs in the Streamlit server, so nothing here costs more than linear time or unbounded memory,
whatever the upload holds: the dialect is sniffed on a bounded sample (:data:`SNIFF_BYTES`, whole lines,
field counts from the C csv reader, never :class:`csv.Sniffer`); Parquet's row and column counts are read
from its footer before any data; an Excel workbook's members are size-capped and re-read with bounded
decompression before openpyxl sees them; every table is capped in rows and columns (:data:`MAX_COLUMNS`).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from collections import Counter
from pathlib import PurePosixPath

import pandas as pd

from core.errors import DataError

__all__ = ["load_table"]

DEFAULT_MAX_ROWS = 2_000_000
MAX_COLUMNS = 10_000
SNIFF_BYTES = 64 * 1024
SNIFF_LINES = 50
MAX_WORKBOOK_BYTES = 128 * 1024 * 1024
MAX_WORKBOOK_MEMBERS = 1_000
DELIMITERS = ",\t;|"  # ties go to the earlier one, as csv.Sniffer's preference
_DECIMAL_COMMA = re.compile(r"-?\d+,\d+")  # fullmatch on one stripped field: linear
_CHUNK = 1 << 20


def load_table(
    data: bytes, filename: str, *, max_rows: int = DEFAULT_MAX_ROWS, max_columns: int = MAX_COLUMNS
) -> pd.DataFrame:
    """Read an uploaded table, in time and memory linear in its size.

    Args:
        data: The file's bytes.
        filename: Its name (a hint; the content decides).
        max_rows: Row cap; larger tables are refused (explain them with the batch command instead).
        max_columns: Column cap.

    Raises:
        DataError: Empty, header only, not a table, duplicate column names, over the row or column cap, or a
            workbook that expands beyond its cap.
    """
    if not data or not data.strip():
        raise DataError(f"The data file {filename!r} is empty. Upload a CSV, Parquet or Excel table with a header row.")
    if data[:4] == b"PAR1":
        frame = _read_parquet(data, filename, max_rows, max_columns)
    elif data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":  # the pre-2007 Excel format (.xls)
        raise DataError(f"{filename!r} is an old-format Excel workbook (.xls); save it as .xlsx or CSV, then upload.")
    elif data[:4] == b"PK\x03\x04":
        frame = _read_excel(data, filename, max_rows)
    else:
        frame = _read_text(data, filename, max_rows, max_columns)
    return _validate(frame, filename, max_rows, max_columns)


def _read_parquet(data: bytes, filename: str, max_rows: int, max_columns: int) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(io.BytesIO(data)).metadata
    except Exception as exc:
        raise DataError(f"The Parquet file {filename!r} is damaged or truncated ({type(exc).__name__}).") from exc
    if meta.num_rows > max_rows:
        raise _too_many_rows(filename, meta.num_rows, max_rows)
    if meta.num_columns > max_columns:
        raise _too_many_columns(filename, meta.num_columns, max_columns)
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise DataError(f"The Parquet file {filename!r} is damaged or truncated ({type(exc).__name__}).") from exc


def _read_excel(data: bytes, filename: str, max_rows: int) -> pd.DataFrame:
    workbook = _bounded_workbook(data, filename)
    try:
        return pd.read_excel(io.BytesIO(workbook), sheet_name=0, nrows=max_rows + 1)
    except Exception as exc:
        raise DataError(
            f"{filename!r} is not a readable Excel workbook ({type(exc).__name__}); export the sheet as CSV."
        ) from exc


def _bounded_workbook(data: bytes, filename: str) -> bytes:
    """The workbook re-packed (stored, honest sizes) after reading every member under :data:`MAX_WORKBOOK_BYTES`.

    Declared sizes are checked first; members are then read in chunks (zipfile never returns more than the
    declared size), so neither a zip bomb nor a lying header reaches openpyxl.
    """
    unreadable = DataError(f"{filename!r} is not a readable Excel workbook; export the sheet as CSV and upload that.")
    too_big = DataError(
        f"{filename!r} expands to more than {MAX_WORKBOOK_BYTES // 2**20} MB of workbook data; export the sheet "
        "as CSV or Parquet and upload that."
    )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise unreadable from exc
    if len(infos) > MAX_WORKBOOK_MEMBERS or sum(i.file_size for i in infos) > MAX_WORKBOOK_BYTES:
        raise too_big
    if any(i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or i.flag_bits & 0x1 for i in infos):
        raise unreadable
    out, total = io.BytesIO(), 0
    try:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as packed:
            for info in infos:
                chunks = []
                with archive.open(info) as fh:
                    while chunk := fh.read(_CHUNK):
                        total += len(chunk)
                        if total > MAX_WORKBOOK_BYTES:
                            raise too_big
                        chunks.append(chunk)
                packed.writestr(info.filename, b"".join(chunks))
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise unreadable from exc
    return out.getvalue()


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


def _sample(text: str) -> str:
    """The first :data:`SNIFF_LINES` whole lines within :data:`SNIFF_BYTES` characters (all of a longer first line)."""
    head = text[:SNIFF_BYTES]
    if len(text) > SNIFF_BYTES and "\n" in head:
        head = head[: head.rfind("\n")]
    end = -1
    for _ in range(SNIFF_LINES):
        end = head.find("\n", end + 1)
        if end < 0:
            return head
    return head[:end]


def _dialect(text: str, filename: str) -> tuple[str, str]:
    """Delimiter and decimal mark from a bounded sample: the delimiter giving the most consistent field count."""
    sample = _sample(text)
    suffix = PurePosixPath(filename.lower()).suffix
    best: tuple[float, int, int] | None = None
    sep = "\t" if suffix in (".tsv", ".tab") else ","
    for rank, candidate in enumerate(DELIMITERS):
        counts = [len(row) for row in _rows(sample, candidate) if row]
        if not counts:
            continue
        width, seen = Counter(counts).most_common(1)[0]
        score = (seen / len(counts), width, -rank)
        if width > 1 and (best is None or score > best):
            best, sep = score, candidate
    decimal = "," if sep != "," and _has_decimal_comma(sample, sep) else "."
    return sep, decimal


def _rows(sample: str, sep: str) -> list[list[str]]:
    """The sample's rows split by ``sep`` (the C reader: linear, quote-aware; a damaged quote ends the sample)."""
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(sample), delimiter=sep)
    while True:
        try:
            rows.append(next(reader))
        except (StopIteration, csv.Error):
            return rows


def _has_decimal_comma(sample: str, sep: str) -> bool:
    return any(_DECIMAL_COMMA.fullmatch(field.strip()) for row in _rows(sample, sep) for field in row)


def _read_text(data: bytes, filename: str, max_rows: int, max_columns: int) -> pd.DataFrame:
    text = _decode(data, filename)
    sep, decimal = _dialect(text, filename)
    header, first = _first_rows(text, sep, filename)
    if len(header) > max_columns:
        raise _too_many_columns(filename, len(header), max_columns)
    if len(first) > len(header) + 1:  # one extra is a row-name column (R's write.table); more would become
        raise DataError(  # pandas' implicit MultiIndex, super-linear in the row's width
            f"{filename!r} is not a well-formed table: its first data row has {len(first):,} fields but the header "
            f"has {len(header):,}. Fix that row or the header and upload again."
        )
    _check_unique([h.strip() for h in header])
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal, skipinitialspace=True, nrows=max_rows + 1)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{filename!r} is not a well-formed table: {str(exc).splitlines()[0]}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _first_rows(text: str, sep: str, filename: str) -> tuple[list[str], list[str]]:
    """The header and the first data row, split as pandas will (the C csv reader: linear)."""
    reader = csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True)
    try:
        return next(reader, []), next(reader, [])
    except csv.Error as exc:
        raise DataError(
            f"{filename!r} is not a well-formed table: its first rows hold a value over 128 KB long or a quote "
            "that is never closed; fix them and upload again."
        ) from exc


def _check_unique(names: list[str]) -> None:
    dupes = sorted(n for n, count in Counter(names).items() if count > 1)
    if dupes:
        raise DataError(
            f"The table has duplicate column names: {', '.join(map(repr, dupes))}. Rename them and upload again."
        )


def _too_many_rows(filename: str, rows: int, max_rows: int) -> DataError:
    """``rows`` is exact (Parquet's footer) or ``max_rows + 1`` (a read stopped one row past the cap)."""
    count = f"more than {max_rows:,}" if rows == max_rows + 1 else f"{rows:,}"
    return DataError(
        f"{filename!r} has {count} rows, over this server's cap of {max_rows:,}; upload a sample, or "
        "explain the whole table with `modellens explain MODEL DATA --out DIR` (Dask)."
    )


def _too_many_columns(filename: str, columns: int, max_columns: int) -> DataError:
    return DataError(
        f"{filename!r} has {columns:,} columns, over this server's cap of {max_columns:,}; upload only the "
        "columns the model needs."
    )


def _validate(frame: pd.DataFrame, filename: str, max_rows: int, max_columns: int) -> pd.DataFrame:
    names = [str(c) for c in frame.columns]
    _check_unique(names)
    if frame.shape[1] == 0:
        raise DataError(f"{filename!r} has no columns. Upload a table with a header row.")
    if frame.shape[1] > max_columns:
        raise _too_many_columns(filename, frame.shape[1], max_columns)
    if len(frame) == 0:
        raise DataError(f"{filename!r} has a header but no rows. Upload a table with data rows.")
    if len(frame) > max_rows:
        raise _too_many_rows(filename, len(frame), max_rows)
    unnamed = [n for n in names if n.startswith("Unnamed: ")]
    if len(unnamed) == len(names):
        raise DataError(f"{filename!r} has no header row. Add column names as the first line.")
    frame.columns = names
    return frame.reset_index(drop=True)
