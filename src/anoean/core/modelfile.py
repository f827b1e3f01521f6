"""The on-disk model format: a directory with ``config.json`` and ``weights.safetensors``.

This module needs only numpy and safetensors (no scikit-learn, no torch), so that a scorer
for embedded use (:class:`anoean.export.NumpyScorer`) can read and verify a model with the
same checks as :meth:`anoean.core.detector.BaseDetector.load`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "anoean-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
PIPELINE_FILE = "pipeline.json"
PREPROCESSING_FILE = "preprocessing.json"
#: every file a model directory may own; saving replaces these and nothing else
MODEL_FILES = (WEIGHTS_FILE, PREPROCESSING_FILE, CONFIG_FILE, PIPELINE_FILE)
#: the key of a JSON file's own SHA-256 (over the rest of its content, canonically encoded)
DIGEST_KEY = "content_sha256"
#: largest JSON file a model directory may hold: far above any real one, so that a symlink
#: to a huge file or a device is refused instead of read into memory
MAX_JSON_BYTES = 64 << 20


class ModelFileError(ValueError):
    """A model directory is missing, damaged, tampered with or of the wrong kind."""


# ----------------------------------------------------------------------------- integrity
def content_digest(obj: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON object without its :data:`DIGEST_KEY`, canonically encoded (sorted
    keys, no whitespace), so that re-indenting a file keeps its digest and any edited value
    changes it."""
    body = {k: v for k, v in obj.items() if k != DIGEST_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seal(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` with its own :func:`content_digest` added under :data:`DIGEST_KEY`."""
    out = dict(obj)
    out[DIGEST_KEY] = content_digest(obj)
    return out


def check_seal(obj: Mapping[str, Any], file: Path) -> None:
    """Raise :class:`ModelFileError` naming ``file`` if its recorded digest does not match.

    Files written by anoean 0.1.0 carry no digest; they are accepted as they are (their
    weights are still covered by ``weights_sha256``).
    """
    if DIGEST_KEY in obj and obj[DIGEST_KEY] != content_digest(obj):
        raise ModelFileError(
            f"{file} does not match the SHA-256 it records ({DIGEST_KEY}): a value in it was "
            "damaged or modified"
        )


def read_regular(file: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file (a symlink to one is followed), refusing anything else."""
    try:
        if not file.is_file():
            raise ModelFileError(f"{file} is missing or is not a regular file")
        if limit is not None and file.stat().st_size > limit:
            raise ModelFileError(
                f"{file} is {file.stat().st_size} bytes, more than any model file ({limit})"
            )
        return file.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{file} cannot be read: {exc}") from exc


def read_versioned_json(file: Path, fmt: str, version: int, what: str) -> dict[str, Any]:
    """The JSON object in ``file``, checked to carry ``"format": fmt`` and
    ``"format_version": version`` and, when it records one, its own SHA-256; any other
    content raises :class:`ModelFileError` naming the file (``what`` says what it should
    have been)."""
    data = read_regular(file, MAX_JSON_BYTES)
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise ModelFileError(f"{file} is not an anoean {what}")
    if obj.get("format_version") != version:
        raise ModelFileError(
            f"{file} has format_version {obj.get('format_version')!r}; "
            f"this anoean reads version {version}"
        )
    check_seal(obj, file)
    return obj


def read_model_dir(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a model directory without building the model."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    cfg_file, w_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not path.is_dir():
        raise ModelFileError(f"{path}: no such model directory (missing or not a directory)")
    for f in (cfg_file, w_file):
        if not f.is_file():
            raise ModelFileError(
                f"{path} is not a model directory: {f.name} is missing or not a regular file"
            )
    config = read_versioned_json(cfg_file, FORMAT_NAME, FORMAT_VERSION, "model config")
    for key, kind in (("class", str), ("params", dict), ("state", dict), ("weights_sha256", str)):
        if not isinstance(config.get(key), kind):
            raise ModelFileError(f"{cfg_file} lacks the key {key!r} (a {kind.__name__})")
    data = read_regular(w_file)
    if hashlib.sha256(data).hexdigest() != config["weights_sha256"]:
        raise ModelFileError(
            f"{w_file} does not match the SHA-256 recorded in {CONFIG_FILE}: "
            "the weights are damaged or were modified"
        )
    try:
        arrays = load(data)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{w_file} is not a readable safetensors file: {exc}") from exc
    return config, arrays


# ----------------------------------------------------------------------------- writing
def _umask() -> int:
    """The process umask, read without changing it where Linux allows (thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _json_format(file: Path) -> Any:
    """The ``format`` of a small JSON file, or None if it is not one."""
    try:
        if not file.is_file() or file.stat().st_size > MAX_JSON_BYTES:
            return None
        obj = json.loads(file.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return obj.get("format") if isinstance(obj, dict) else None


def is_model_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding an anoean model (a detector's ``config.json``
    or a pipeline's ``pipeline.json``)."""
    path = Path(path)
    return path.is_dir() and (
        _json_format(path / CONFIG_FILE) == FORMAT_NAME
        or _json_format(path / PIPELINE_FILE) == "anoean-pipeline"
    )


def check_model_destination(path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Raise ``FileExistsError`` unless a model may be written to ``path``.

    Allowed: a path that does not exist, an empty directory, and (with ``overwrite=True``)
    an existing anoean model directory. Anything else is refused before anything is
    written, so that saving never deletes or replaces what it did not write. Called by
    :func:`write_model_dir`, and by ``anoean fit`` before training.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if not path.is_dir():
        raise FileExistsError(
            f"{path} exists and is not a directory; not replacing it (choose another path)"
        )
    if not any(path.iterdir()):
        return
    if not is_model_dir(path):
        raise FileExistsError(
            f"{path} exists and is not an anoean model directory; nothing was written "
            "(choose a new or empty directory)"
        )
    if not overwrite:
        raise FileExistsError(
            f"{path} already holds an anoean model; pass overwrite=True (CLI: --overwrite) "
            "to replace it"
        )


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto ``path`` when the block succeeds,
    removed when it fails (or is interrupted), so ``path`` is never half-written.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with atomic_output(os.path.join(d, "a.txt")) as tmp:
    ...     _ = tmp.write_text("done")
    >>> os.listdir(d)
    ['a.txt']
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_model_dir(
    path: str | os.PathLike[str], files: Mapping[str, bytes], *, overwrite: bool = False
) -> Path:
    """Write a model directory: ``files`` (name -> content, names from :data:`MODEL_FILES`).

    Everything is first written into a new temporary sibling directory, then put in place:

    * a new path: the directory is renamed into place in one atomic step;
    * an empty directory, or an existing model directory with ``overwrite=True``: each file
      is renamed over its old version (atomic per file) in the order given, weights first,
      then the JSON files that pin their digests; model files of the old version that the
      new one lacks are removed, and every other file in the directory is left as it was.
      A reader racing the replacement sees either a whole model or a digest mismatch
      (:class:`ModelFileError`), never a mix of two models.

    Directories and files follow the umask (0755/0644 under the usual 022), so a scoring
    service running as another user can read them. On any error the temporary directory is
    removed and the destination is untouched.
    """
    unknown = [n for n in files if n not in MODEL_FILES]
    if unknown:
        raise ValueError(f"not model file names: {unknown}; expected some of {MODEL_FILES}")
    path = Path(path)
    check_model_destination(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        for name, data in files.items():
            with open(staging / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if not (path.exists() or path.is_symlink()):
            os.rename(staging, path)
            return path
        for name in files:
            os.replace(staging / name, path / name)
        for name in MODEL_FILES:
            stale = path / name
            if name not in files and stale.is_file() and not stale.is_symlink():
                stale.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def jsonable_params(params: dict[str, Any]) -> dict[str, Any]:
    """A detector's parameters as JSON values (numpy scalars and tuples converted; a
    RandomState or Generator becomes None: the drawn seed is saved in the state)."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, np.integer):
            v = int(v)
        elif isinstance(v, np.floating):
            v = float(v)
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, (np.random.RandomState, np.random.Generator)):
            v = None  # the drawn seed is kept in the state as seed_
        try:
            json.dumps(v)
        except TypeError as exc:
            raise ValueError(f"parameter {k}={v!r} cannot be saved as JSON") from exc
        out[k] = v
    return out
