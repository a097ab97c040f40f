"""Reading model zips (MLflow / Azure AutoML folders) in the server, bounded whatever the archive claims.

Why a module: a zip is the one upload whose cost its own headers describe, so every read here is checked
before it starts and bounded while it runs: at most :data:`MAX_ZIP_ENTRIES` entries; a member's declared size
is checked against its cap before reading, then it is read in chunks so a lying header cannot get past the cap
(zipfile never returns more than the declared size); only stored and deflated members (bzip2 / LZMA members
decompress without a bound inside zipfile); at most :data:`MAX_ENV_FILES` environment files of
:data:`PIN_FILE_CAP` each, whose pins are parsed in one left-to-right pass per line (no backtracking pattern).
Every failure is a :class:`~core.errors.ModelLoadError` with one sentence.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib

from core.errors import ModelLoadError

__all__ = ["open_zip", "parse_pins", "read_member", "zip_pins"]

ENV_FILES = frozenset({"conda.yml", "conda.yaml", "requirements.txt", "MLmodel", "python_env.yaml"})
MAX_ZIP_ENTRIES = 10_000
MAX_ENV_FILES = 16
PIN_FILE_CAP = 1 << 20
_CHUNK = 1 << 20
# One greedy character class each, applied in sequence: linear, whatever the line holds.
_PIN_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]+")
_PIN_VERSION = re.compile(r"[A-Za-z0-9_.*+\-]+")
_PIN_OPERATORS = ("==", "~=", "<=", ">=", "=")


def open_zip(data: bytes, filename: str) -> tuple[zipfile.ZipFile, list[str]]:
    """The archive and its file names, after the entry-count check."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, NotImplementedError) as exc:
        raise ModelLoadError(f"The zip file {filename!r} is damaged ({exc}).") from exc
    if len(infos) > MAX_ZIP_ENTRIES:
        raise ModelLoadError(
            f"The zip file {filename!r} has {len(infos):,} entries, over the cap of {MAX_ZIP_ENTRIES:,}; "
            "zip only the model folder."
        )
    return archive, [i.filename for i in infos if not i.is_dir()]


def zip_pins(archive: zipfile.ZipFile, names: list[str]) -> dict[str, str]:
    """Pins from the zip's environment files (at most :data:`MAX_ENV_FILES` of them, each size-capped)."""
    env_names = [n for n in names if _is_env_member(n)]
    if len(env_names) > MAX_ENV_FILES:
        raise ModelLoadError(
            f"This zip holds {len(env_names)} environment files (conda / requirements / MLmodel), over the cap of "
            f"{MAX_ENV_FILES}; zip only the model folder."
        )
    pins: dict[str, str] = {}
    for name in env_names:
        pins.update(parse_pins(read_member(archive, name, PIN_FILE_CAP).decode("utf-8", "replace")))
    return pins


def _is_env_member(name: str) -> bool:
    base = name.rpartition("/")[2]
    return base in ENV_FILES or (base.startswith("conda_env") and base.endswith((".yml", ".yaml")))


def read_member(archive: zipfile.ZipFile, name: str, cap: int, *, keep: int | None = None) -> bytes:
    """A member's bytes, checked against ``cap`` before reading and read in chunks so no header can lie past it.

    With ``keep``, only the first ``keep`` bytes are read (and the rest is not checked).
    """
    info = archive.getinfo(name)
    if info.flag_bits & 0x1:
        raise ModelLoadError(f"The zip member {name!r} is encrypted; upload an unencrypted zip.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelLoadError(
            f"The zip member {name!r} uses a compression other than deflate; re-create the zip with standard "
            "compression (e.g. `zip -r` or Python's shutil.make_archive)."
        )
    if info.file_size > cap:
        raise ModelLoadError(f"The zip member {name!r} is larger than the {_mb(cap)} cap.")
    chunks, total = [], 0
    limit = cap + 1 if keep is None else min(keep, cap + 1)
    try:
        with archive.open(info) as fh:
            while total < limit:
                chunk = fh.read(min(_CHUNK, limit - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise ModelLoadError(f"The zip member {name!r} is damaged ({exc}); upload the zip again.") from exc
    if total > cap:
        raise ModelLoadError(f"The zip member {name!r} expands beyond the {_mb(cap)} cap.")
    return b"".join(chunks)


def _mb(size: int) -> str:
    return f"{size / 2**20:g} MB"


def parse_pins(text: str) -> dict[str, str]:
    """Package pins from a conda environment, requirements file or MLmodel (``name==version`` lines).

    Linear in the text: each line is read left to right once (no backtracking pattern). Text past
    :data:`PIN_FILE_CAP` characters is ignored.
    """
    pins = {}
    for line in text[:PIN_FILE_CAP].splitlines():
        pin = _parse_pin(line)
        if pin is None:
            continue
        name, version = pin
        name = name.lower().split("[")[0]
        if name not in ("python", "pip"):
            pins[name] = version
        elif name == "python":
            pins["python"] = version
    return pins


def _parse_pin(line: str) -> tuple[str, str] | None:
    """``(name, version)`` of one ``[- ]name <op> version`` line; each step a single greedy character class."""
    rest = line.lstrip()
    if rest.startswith("-"):
        rest = rest[1:].lstrip()
    name = _PIN_NAME.match(rest)
    if name is None:
        return None
    rest = rest[name.end() :].lstrip()
    operator = next((op for op in _PIN_OPERATORS if rest.startswith(op)), None)
    if operator is None:
        return None
    version = _PIN_VERSION.match(rest[len(operator) :].lstrip())
    return (name.group(), version.group()) if version else None
