"""Hostile uploads for the server's parsers (issue 14, finding 5), small on disk and built streaming.

Each builder returns the bytes an attacker would upload. The gigabyte payloads are compressed as they are
generated, chunk by chunk, so neither the tests nor ``python -m bench hostile`` ever hold them whole.
Shared by tests/core/test_hostile_inputs.py and bench/hostile.py.
"""

from __future__ import annotations

import bz2
import io
import pickle
import struct
import zipfile

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

GIB = 1 << 30
MIB = 1 << 20
_CHUNK = 16 * MIB
AUTOML_GLOBAL = ("azureml.training.tabular.models.pipeline_with_ytransformations", "PipelineWithYTransformations")


def _unicode(value: str) -> bytes:  # BINUNICODE
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def automl_head() -> bytes:
    """A protocol-4 pickle start naming the AutoML pipeline class through STACK_GLOBAL (the memo in between)."""
    module, name = AUTOML_GLOBAL
    return b"\x80\x04" + _unicode(module) + b"\x94" + _unicode(name) + b"\x94\x93"


def _repeat(total: int, byte: bytes = b"N"):
    chunk = byte * _CHUNK
    while total > 0:
        yield chunk[:total]
        total -= len(chunk)


def big_strings(size: int, *, each: int = 4 * MIB) -> bytes:
    """``size`` bytes of BINBYTES opcodes (``each`` zero bytes apiece) then POPs: few opcodes, many bytes."""
    op = b"B" + struct.pack("<I", each) + bytes(each) + b"0"
    return op * (size // len(op))


def bz2_opcode_bomb(size: int = GIB) -> bytes:
    """An ~800-byte bz2 "joblib" that decompresses to the AutoML head and ``size`` NONE opcodes."""
    compressor = bz2.BZ2Compressor(9)
    out = [compressor.compress(automl_head())]
    out.extend(compressor.compress(chunk) for chunk in _repeat(size))
    out.append(compressor.flush())
    return b"".join(out)


def pins_zip(model: object, requirements: bytes) -> bytes:
    """An MLflow-style zip whose requirements.txt is ``requirements``."""
    return zip_of({"model/model.pkl": pickle.dumps(model, protocol=4), "model/requirements.txt": requirements})


def zip_of(files: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of these members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def streamed_zip(name: str, head: bytes, size: int, *, filler: bytes = b" ", others: dict[str, bytes] | None = None):
    """A deflated zip whose member ``name`` is ``head`` then ``size`` filler bytes, written chunk by chunk."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for other, data in (others or {}).items():
            archive.writestr(other, data)
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=size > 2 * GIB - MIB) as fh:
            fh.write(head)
            for chunk in _repeat(size, filler):
                fh.write(chunk)
    return buf.getvalue()


def json_zip(size: int) -> bytes:
    """A model zip whose model.pkl member is ``size`` bytes of JSON (no ``learner`` key)."""
    return streamed_zip("model/model.pkl", b'{"weights": [', size, filler=b"0,")


def lying_zip(data: bytes, name: str, declared: int) -> bytes:
    """The zip with member ``name``'s uncompressed size rewritten to ``declared`` (local and central headers)."""
    out = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    struct.pack_into("<I", out, info.header_offset + 22, declared)
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        length = struct.unpack_from("<H", out, pos + 28)[0]
        if out[pos + 46 : pos + 46 + length] == name.encode():
            struct.pack_into("<I", out, pos + 24, declared)
        pos = out.find(b"PK\x01\x02", pos + 46)
    return bytes(out)


def nested_zip(model: object, depth: int) -> bytes:
    """``depth`` zips, each holding the next as its model.pkl; the innermost holds the pickled model."""
    data = pickle.dumps(model, protocol=4)
    for _ in range(depth):
        data = zip_of({"model.pkl": data}, compression=zipfile.ZIP_STORED)
    return data


def quote_run_csv(size: int = MIB) -> bytes:
    """A CSV whose second line is one ``size``-byte run of quote/delimiter characters."""
    return b"a,b\n" + b'",' * (size // 2) + b"\n1,2\n"


def parquet_rows(rows: int = 20_000_000, *, group: int = 1_000_000) -> bytes:
    """A tiny Parquet file (one constant column, written a row group at a time) of ``rows`` rows."""
    table = pa.table({"x": pa.array([7] * group, pa.int64())})
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, table.schema) as writer:
        for start in range(0, rows, group):
            writer.write_table(table.slice(0, min(group, rows - start)))
    return buf.getvalue()


def parquet_columns(columns: int) -> bytes:
    """A one-row Parquet file of ``columns`` columns."""
    buf = io.BytesIO()
    pq.write_table(pa.table({f"c{i}": [i] for i in range(columns)}), buf)
    return buf.getvalue()


def xlsx_bomb(size: int = GIB) -> bytes:
    """A real two-row workbook whose first sheet's XML is padded to ``size`` bytes (deflate: ~1/1000 on disk)."""
    buf = io.BytesIO()
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_excel(buf, index=False)
    source = zipfile.ZipFile(buf)
    sheet = "xl/worksheets/sheet1.xml"
    others = {i.filename: source.read(i) for i in source.infolist() if i.filename != sheet}
    return streamed_zip(sheet, source.read(sheet), size, others=others)
