"""Training checkpoints: the whole training state, written every epoch, so that an interrupted
run resumes where it stopped and loses nothing.

A checkpoint holds what the next epoch depends on: every network's weights and buffers,
every optimiser's state, each rank's random generator and its anomaly-cycling position
(:class:`~anoean.training.loop.EpochBatches`), and the loop's own state (the history, the
best epoch, its score and weights, the epochs since the best, whether early stopping has
ended the run). A resumed run therefore continues draw for draw: with the same data, seed,
parameters and number of ranks it ends with exactly the weights of an uninterrupted run
(``tests/distributed/test_torchrun.py`` kills a rank to show it).

Files are data, never pickles: ``epoch-NNNNN.safetensors`` (the tensors) and
``epoch-NNNNN.json`` (everything else, the tensors' names in it, and the SHA-256 of the
tensor file), each written to a temporary name and renamed into place, the JSON last; the
latest epoch whose JSON and tensors agree is the one resumed. One subfolder per training run
of a fit (``run0``, ``run1``: AnoEANPlus's ``generate_anomalies="auto"`` trains twice).

In a distributed run rank 0 writes, after gathering the other ranks' generator states; every
rank reads the same files on resume, so multi-node runs need a directory all nodes share.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anoean.training import distributed
from anoean.training.loop import EpochBatches

CHECKPOINT_FORMAT = "anoean-checkpoint"
CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^epoch-(\d{5,})\.json$")
#: the other files a checkpoint folder holds: tensors, and temporaries of a killed writer
_OURS = re.compile(r"^(epoch-\d{5,}\.safetensors|\.epoch-\d{5,}\.(json|safetensors)\..*\.tmp)$")


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed: damaged, or written by a different run."""


# ------------------------------------------------------------------ nested values <-> files
def _flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """JSON for ``obj`` with each tensor stored in ``tensors`` under a path-like name."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "t"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return _flatten(torch.from_numpy(np.ascontiguousarray(obj)), tensors, prefix)
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _flatten(v, tensors, f"{prefix}/{k}") for k, v in obj.items()}
        return {"__items__": [[k, _flatten(v, tensors, f"{prefix}/{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, tensors, f"{prefix}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, float) and not np.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    raise TypeError(f"cannot checkpoint a value of type {type(obj).__name__} at {prefix!r}")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__float__"}:
            return float(obj["__float__"])
        if set(obj) == {"__items__"}:
            return {k: _unflatten(v, tensors) for k, v in obj["__items__"]}
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_checkpoint(directory: Path, epoch: int, state: dict[str, Any]) -> Path:
    """Write ``state`` (nested dicts and lists of tensors, arrays and JSON values) as epoch
    ``epoch``'s checkpoint in ``directory``; older epochs but the previous one are removed."""
    from safetensors.torch import save

    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    body = _flatten(state, tensors, "")
    blob = save(tensors)
    stem = f"epoch-{epoch:05d}"
    _atomic_write(directory / f"{stem}.safetensors", blob)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "epoch": epoch,
        "tensors": f"{stem}.safetensors",
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        "state": body,
    }
    path = directory / f"{stem}.json"
    _atomic_write(path, json.dumps(meta).encode("utf-8"))
    for old in directory.glob("epoch-*.json"):
        m = _NAME.match(old.name)
        if m and int(m.group(1)) < epoch - 1:
            old.unlink(missing_ok=True)
            (directory / f"epoch-{m.group(1)}.safetensors").unlink(missing_ok=True)
    return path


def remove_checkpoints(directory: str | os.PathLike[str]) -> None:
    """Delete the checkpoint files in ``directory`` (its ``run*`` subfolders), and the
    folders once empty; any other file is left where it is."""
    root = Path(directory)
    if not root.is_dir():
        return
    for run in root.glob("run*"):
        if not run.is_dir():
            continue
        for f in run.iterdir():
            if _NAME.match(f.name) or _OURS.match(f.name):
                f.unlink(missing_ok=True)
        if not any(run.iterdir()):
            run.rmdir()
    if not any(root.iterdir()):
        root.rmdir()


def read_latest(directory: Path) -> tuple[int, dict[str, Any]] | None:
    """The latest complete checkpoint in ``directory`` as (epoch, state), or None."""
    from safetensors.torch import load

    if not directory.is_dir():
        return None
    found = sorted(
        (int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name)) is not None
    )
    for epoch, path in reversed(found):
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a JSON cut short: an older one may be complete
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not an anoean checkpoint")
        if meta.get("format_version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{path} has checkpoint format version {meta.get('format_version')}; this "
                f"anoean reads version {CHECKPOINT_VERSION}"
            )
        blob_path = directory / str(meta["tensors"])
        try:
            blob = blob_path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(blob).hexdigest() != meta["tensors_sha256"]:
            continue
        return epoch, _unflatten(meta["state"], load(blob))
    return None


# ------------------------------------------------------------------ the training run's state
_ACTIVE: Checkpointer | None = None


def active() -> Checkpointer | None:
    """The checkpointer of the :func:`checkpoints` block being run, or None."""
    return _ACTIVE


@contextmanager
def checkpoints(
    directory: str | os.PathLike[str], *, resume: bool = False
) -> Iterator[Checkpointer]:
    """Within the block, every neural fit writes its training state to ``directory`` each
    epoch and, with ``resume``, starts from the latest state found there."""
    global _ACTIVE
    if _ACTIVE is not None:
        raise RuntimeError("checkpoints() blocks do not nest")
    _ACTIVE = Checkpointer(Path(directory), resume)
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = None


@dataclass
class Checkpointer:
    """Checkpoints of one fit in ``directory`` (one subfolder per training run); with
    ``resume``, each run starts from its latest checkpoint when there is one."""

    directory: Path
    resume: bool = False
    _runs: int = 0

    def bind(
        self,
        *,
        nets: nn.Module,
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
        batches: EpochBatches,
        fingerprint: dict[str, Any],
    ) -> RunCheckpoint:
        """The checkpoints of the fit's next training run."""
        run = RunCheckpoint(
            Path(self.directory) / f"run{self._runs}",
            self.resume,
            nets,
            optimizers,
            generator,
            batches,
            json.loads(json.dumps(fingerprint)),
        )
        self._runs += 1
        return run


@dataclass
class RunCheckpoint:
    """Saves and restores one training run's state (:func:`anoean.training.loop.train_loop`
    calls :meth:`load` before the first epoch and :meth:`save` after each one)."""

    directory: Path
    resume: bool
    nets: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    generator: torch.Generator
    batches: EpochBatches
    fingerprint: dict[str, Any]
    resumed_epoch: int | None = field(default=None)

    def _rank_state(self) -> dict[str, Any]:
        b = self.batches
        return {
            "generator": self.generator.get_state(),
            "anomaly_perm": b._a_perm.cpu(),
            "anomaly_pos": int(b._a_pos),
        }

    def save(self, epoch: int, loop: dict[str, Any]) -> None:
        ranks = [self._rank_state()]
        ctx = distributed.current()
        if ctx is not None:
            import torch.distributed as dist

            gathered: list[Any] = [None] * ctx.world_size
            dist.all_gather_object(gathered, ranks[0])
            ranks = gathered
        if not distributed.is_main_process():
            return
        state = {
            "fingerprint": self.fingerprint,
            "nets": self.nets.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "ranks": ranks,
            "loop": loop,
        }
        write_checkpoint(self.directory, epoch, state)

    def load(self) -> tuple[int, dict[str, Any]] | None:
        """Restore the latest checkpoint; (its epoch, the loop's state), or None to start
        afresh (no ``resume``, or no checkpoint yet)."""
        if not self.resume:
            return None
        found = read_latest(self.directory)
        if found is None:
            if distributed.is_main_process():
                warnings.warn(
                    f"resume: no checkpoint in {self.directory}; training from the first epoch",
                    UserWarning,
                    stacklevel=2,
                )
            return None
        epoch, state = found
        recorded = state["fingerprint"]
        if recorded != self.fingerprint:
            diff = sorted(
                k
                for k in set(recorded) | set(self.fingerprint)
                if recorded.get(k) != self.fingerprint.get(k)
            )
            raise CheckpointError(
                f"{self.directory}: the checkpoint was written by a different run (it differs "
                f"in {', '.join(diff)}); resume with the same data, method, parameters, seed "
                "and number of processes, or start afresh without --resume"
            )
        ctx = distributed.current()
        rank = 0 if ctx is None else ctx.rank
        self.nets.load_state_dict(state["nets"])
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        mine = state["ranks"][rank]
        self.generator.set_state(mine["generator"])
        self.batches._a_perm = mine["anomaly_perm"].to(self.batches.device)
        self.batches._a_pos = int(mine["anomaly_pos"])
        self.resumed_epoch = epoch
        return epoch, state["loop"]
