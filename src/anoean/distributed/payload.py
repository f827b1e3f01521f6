"""A model directory as data (:class:`ModelPayload`), to send to Dask workers once.

A worker is never sent a pickled torch object or a loaded pipeline: it gets the bytes of the
model directory's files (``config.json``, ``weights.safetensors``, ``preprocessing.json``,
``pipeline.json``), and :func:`materialise` writes them to a private directory once per
worker process and loads them there with :func:`~anoean.serve.pipeline.load_pipeline`, which
checks every SHA-256 the files record. Later tasks in the same process reuse the loaded
pipeline (a cache keyed by the payload's digest and the engine).
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from anoean.core.modelfile import (
    DIGEST_KEY,
    MODEL_FILES,
    PIPELINE_FILE,
    ModelFileError,
    read_regular,
    write_model_dir,
)
from anoean.serve.pipeline import Pipeline, load_pipeline, save_pipeline


@dataclass(frozen=True, eq=False)
class ModelPayload:
    """The files of a model directory, name -> bytes, and a digest of them all.

    ``digest`` is the SHA-256 over the sorted file names and the SHA-256 of each file, so
    two payloads with the same digest hold the same model. Dask's ``tokenize`` uses it, so
    the same model gives the same task key.
    """

    digest: str
    files: Mapping[str, bytes]

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> ModelPayload:
        """A payload of ``files`` (names from the model directory format)."""
        unknown = sorted(set(files) - set(MODEL_FILES))
        if unknown:
            raise ValueError(f"not model file names: {unknown}; expected some of {MODEL_FILES}")
        h = hashlib.sha256()
        for name in sorted(files):
            h.update(name.encode("utf-8") + b"\0" + hashlib.sha256(files[name]).digest())
        return cls(h.hexdigest(), dict(files))

    @property
    def nbytes(self) -> int:
        """Total size of the files."""
        return sum(len(b) for b in self.files.values())

    def __dask_tokenize__(self) -> str:
        return self.digest


def read_payload(path: str | os.PathLike[str]) -> ModelPayload:
    """The payload of the model directory at ``path`` (its model files only)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFileError(f"{path}: no such model directory")
    files = {name: read_regular(path / name) for name in MODEL_FILES if (path / name).is_file()}
    if PIPELINE_FILE not in files:
        raise ModelFileError(f"{path} is not an anoean model directory: {PIPELINE_FILE} is missing")
    return ModelPayload.from_files(files)


def _sealed_digest(path: Path) -> str | None:
    """The content digest sealed in ``path/pipeline.json``, or None when unreadable."""
    try:
        return json.loads(read_regular(path / PIPELINE_FILE)).get(DIGEST_KEY)
    except (OSError, ValueError, ModelFileError, AttributeError):
        return None


def pipeline_payload(pipe: Pipeline) -> ModelPayload:
    """The payload of a loaded :class:`Pipeline`.

    A pipeline loaded from (or saved to) a model directory that still holds it (same sealed
    digest in ``pipeline.json``) is read from there; any other is saved to a temporary
    directory first (a copy of it, so that ``pipe`` itself is not changed).
    """
    if pipe.path is not None and pipe.meta.get(DIGEST_KEY) is not None:
        if _sealed_digest(Path(pipe.path)) == pipe.meta.get(DIGEST_KEY):
            return read_payload(pipe.path)
    tmp = Path(tempfile.mkdtemp(prefix="anoean-payload-"))
    try:
        return read_payload(save_pipeline(dataclasses.replace(pipe), tmp / "model"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def model_payload(model: str | os.PathLike[str] | Pipeline | ModelPayload) -> ModelPayload:
    """The payload of a model directory, a loaded :class:`Pipeline`, or a payload as is."""
    if isinstance(model, ModelPayload):
        return model
    if isinstance(model, Pipeline):
        return pipeline_payload(model)
    return read_payload(model)


# --------------------------------------------------------------------------- per process
_LOADED: dict[tuple[str, str], Pipeline] = {}
_LOCK = threading.Lock()
_DIRS: list[Path] = []


def _scratch_root() -> str | None:
    """The Dask worker's local directory when running in one (removed with the worker),
    else None (the system's temporary directory)."""
    try:
        from distributed import get_worker

        return str(get_worker().local_directory)
    except (ImportError, ValueError, AttributeError):
        return None


@atexit.register
def _cleanup() -> None:
    for d in _DIRS:
        shutil.rmtree(d, ignore_errors=True)


def materialise(payload: ModelPayload, engine: str = "auto") -> Pipeline:
    """The :class:`Pipeline` of ``payload``, written and loaded once per process and engine.

    The files are written to a new private directory (in the Dask worker's local directory
    when in a worker, removed at exit otherwise) and loaded with
    :func:`~anoean.serve.pipeline.load_pipeline`, so a damaged payload raises the same
    :class:`~anoean.core.modelfile.ModelFileError` as a damaged model directory.
    """
    key = (payload.digest, engine)
    with _LOCK:
        pipe = _LOADED.get(key)
        if pipe is not None:
            return pipe
        d = Path(
            tempfile.mkdtemp(prefix=f"anoean-model-{payload.digest[:12]}-", dir=_scratch_root())
        )
        _DIRS.append(d)
        try:
            path = write_model_dir(d / "model", payload.files)
            pipe = load_pipeline(path, engine=engine)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        _LOADED[key] = pipe
        return pipe
