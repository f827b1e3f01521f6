"""The on-disk model format: a directory with ``config.json`` and ``weights.safetensors``.

This module needs only numpy and safetensors (no scikit-learn, no torch), so that a scorer
for embedded use (:class:`anoean.export.NumpyScorer`) can read and verify a model with the
same checks as :meth:`anoean.base.BaseDetector.load`. :mod:`anoean.base` re-exports every
name defined here.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "anoean-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


class ModelFileError(ValueError):
    """A model directory is missing, damaged, tampered with or of the wrong kind."""


def read_versioned_json(file: Path, fmt: str, version: int, what: str) -> dict[str, Any]:
    """The JSON object in ``file``, checked to carry ``"format": fmt`` and
    ``"format_version": version``; any other content raises :class:`ModelFileError` naming
    the file (``what`` says what it should have been)."""
    try:
        obj = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise ModelFileError(f"{file} is not an anoean {what}")
    if obj.get("format_version") != version:
        raise ModelFileError(
            f"{file} has format_version {obj.get('format_version')!r}; "
            f"this anoean reads version {version}"
        )
    return obj


def read_model_dir(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a model directory without building the model."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    cfg_file, w_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    for f in (cfg_file, w_file):
        if not f.is_file():
            raise ModelFileError(f"{path} is not a model directory: {f.name} is missing")
    config = read_versioned_json(cfg_file, FORMAT_NAME, FORMAT_VERSION, "model config")
    for key in ("class", "params", "state", "weights_sha256"):
        if key not in config:
            raise ModelFileError(f"{cfg_file} lacks the key {key!r}")
    data = w_file.read_bytes()
    if hashlib.sha256(data).hexdigest() != config["weights_sha256"]:
        raise ModelFileError(
            f"{w_file} does not match the SHA-256 recorded in {CONFIG_FILE}: "
            "the weights are damaged or were modified"
        )
    try:
        arrays = load_file(str(w_file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{w_file} is not a readable safetensors file: {exc}") from exc
    return config, arrays
