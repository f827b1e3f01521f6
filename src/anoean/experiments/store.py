"""The record store of a reproduction: one JSON line per run in ``runs.jsonl`` (and one per
failed run in ``errors.jsonl``), appended and flushed as each run ends, so that an
interrupted reproduction resumes where it stopped."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger("anoean")

RUNS_FILE = "runs.jsonl"
ERRORS_FILE = "errors.jsonl"


def read_runs(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of ``runs.jsonl``; an unreadable line (an interrupted write) is reported."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s line %d is not valid JSON (an interrupted write?): ignored", path, i)
    return records


def append_record(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
