"""Plain-data messages between the dashboard and model workers: JSON plus ``.npy`` blobs, never pickle.

A message is ``[u32 header length][header JSON][blob][blob]...``. The header is the payload with every
numpy array, bytes value and pandas DataFrame replaced by a reference to a blob; arrays are written with
``np.save(allow_pickle=False)`` and read with ``np.load(allow_pickle=False)``, so an object array or a
pickle can never cross the boundary. Strings in frames travel as JSON lists.

Both ends may run different Pythons (the Azure AutoML runtime is Python 3.9/3.10 with numpy 1.23 and
pandas 1.5): this module must stay importable there.
"""

from __future__ import annotations

import io
import json
import math
import struct
from typing import IO, Any, BinaryIO

import numpy as np

__all__ = ["WireError", "decode", "encode", "read_message", "write_message"]

MAX_MESSAGE_BYTES = 8 * 1024**3


class WireError(Exception):
    """A message could not be encoded or decoded (a bug or a dead peer, never user input)."""


def _to_plain(value: Any, blobs: list[bytes]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        blobs.append(bytes(value))
        return {"$bytes": len(blobs) - 1}
    if isinstance(value, np.ndarray):
        return _array_ref(value, blobs)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise WireError("message dict keys must be strings")
        return {k: _to_plain(v, blobs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v, blobs) for v in value]
    frame_ref = _frame_ref(value, blobs)
    if frame_ref is not None:
        return frame_ref
    raise WireError(f"cannot send a {type(value).__name__} across the worker boundary")


def _array_ref(array: np.ndarray, blobs: list[bytes]) -> dict[str, Any]:
    if array.dtype.hasobject:
        return {"$list": [_scalar(v) for v in array.tolist()], "shape": list(array.shape)}
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    blobs.append(buf.getvalue())
    return {"$nd": len(blobs) - 1}


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return str(value)


def _frame_ref(frame: Any, blobs: list[bytes]) -> dict[str, Any] | None:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is always present in ModelLens environments
        return None
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if not isinstance(frame, pd.DataFrame):
        return None
    columns = []
    for i, name in enumerate(frame.columns):
        columns.append(_column_ref(str(name), frame.iloc[:, i], blobs))
    return {"$frame": columns, "n": len(frame)}


def _column_ref(name: str, col: Any, blobs: list[bytes]) -> dict[str, Any]:
    import pandas as pd

    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = [_scalar(c) for c in dtype.categories.tolist()]
        codes = np.asarray(col.cat.codes, dtype=np.int32)
        return {"name": name, "kind": "category", "categories": cats, "codes": _array_ref(codes, blobs)}
    if pd.api.types.is_datetime64_any_dtype(dtype):
        tz = str(getattr(dtype, "tz", None) or "")
        values = pd.DatetimeIndex(col).tz_localize(None) if tz else pd.DatetimeIndex(col)
        ns = values.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        return {"name": name, "kind": "datetime", "tz": tz, "values": _array_ref(ns, blobs)}
    if pd.api.types.is_bool_dtype(dtype) and not col.isna().any():
        return {"name": name, "kind": "bool", "values": _array_ref(col.to_numpy(dtype=bool), blobs)}
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        if pd.api.types.is_integer_dtype(dtype) and not col.isna().any():
            return {"name": name, "kind": "int", "values": _array_ref(col.to_numpy(dtype=np.int64), blobs)}
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return {"name": name, "kind": "float", "values": _array_ref(values, blobs)}
    return {"name": name, "kind": "object", "values": [_scalar(v) for v in col.tolist()]}


def _from_plain(value: Any, blobs: list[bytes]) -> Any:
    if isinstance(value, list):
        return [_from_plain(v, blobs) for v in value]
    if not isinstance(value, dict):
        return value
    if "$nd" in value:
        return np.load(io.BytesIO(blobs[value["$nd"]]), allow_pickle=False)
    if "$bytes" in value:
        return blobs[value["$bytes"]]
    if "$list" in value:
        out = np.empty(len(value["$list"]), dtype=object)
        out[:] = value["$list"]
        return out.reshape(value["shape"])
    if "$frame" in value:
        return _frame_from(value, blobs)
    return {k: _from_plain(v, blobs) for k, v in value.items()}


def _frame_from(ref: dict[str, Any], blobs: list[bytes]) -> Any:
    import pandas as pd

    data = {}
    for col in ref["$frame"]:
        kind = col["kind"]
        if kind == "category":
            codes = _from_plain(col["codes"], blobs)
            data[col["name"]] = pd.Categorical.from_codes(codes, categories=col["categories"])
        elif kind == "datetime":
            values = pd.to_datetime(_from_plain(col["values"], blobs).astype("datetime64[ns]"))
            data[col["name"]] = values.tz_localize(col["tz"]) if col["tz"] else values
        elif kind == "object":  # a missing value arrives as NaN, as pandas' CSV reader gives it (not None)
            data[col["name"]] = pd.array([np.nan if v is None else v for v in col["values"]], dtype=object)
        else:
            data[col["name"]] = _from_plain(col["values"], blobs)
    frame = pd.DataFrame(data, index=pd.RangeIndex(ref["n"]))
    if len(frame.columns) != len(ref["$frame"]):
        raise WireError("frame has duplicate column names")
    return frame


def encode(payload: Any) -> bytes:
    """Encode plain data (dicts, lists, scalars, arrays, bytes, DataFrames) as one message."""
    blobs: list[bytes] = []
    plain = _to_plain(payload, blobs)
    header = json.dumps({"payload": plain, "blobs": [len(b) for b in blobs]}, allow_nan=True).encode()
    return b"".join([struct.pack("<I", len(header)), header, *blobs])


def decode(message: bytes) -> Any:
    """Decode a message produced by :func:`encode`."""
    if len(message) < 4:
        raise WireError("truncated message")
    (size,) = struct.unpack("<I", message[:4])
    header = json.loads(message[4 : 4 + size].decode())
    blobs, offset = [], 4 + size
    for length in header["blobs"]:
        blobs.append(message[offset : offset + length])
        offset += length
    if offset != len(message):
        raise WireError("message length does not match its header")
    return _from_plain(header["payload"], blobs)


def write_message(stream: IO[bytes], payload: Any) -> None:
    """Write one length-prefixed message to a binary stream and flush it."""
    body = encode(payload)
    stream.write(struct.pack("<Q", len(body)))
    stream.write(body)
    stream.flush()


def read_message(stream: BinaryIO) -> Any:
    """Read one length-prefixed message; raises EOFError when the peer has gone."""
    head = _read_exact(stream, 8)
    (size,) = struct.unpack("<Q", head)
    if size > MAX_MESSAGE_BYTES:
        raise WireError("message larger than the cap")
    return decode(_read_exact(stream, size))


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(min(remaining, 1 << 24))
        if not chunk:
            raise EOFError("peer closed the stream")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
