"""Small shared helpers: seeding, device resolution, version records.

Randomness follows one rule: ``random_state`` is turned into one integer seed, and that seed
feeds a :class:`numpy.random.Generator` and a :class:`torch.Generator`. The global numpy and
torch RNGs are never read or written, so fitting a model never perturbs user code.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("anoean")


def user_cache_dir() -> Path:
    """anoean's folder in the per-user cache: ``$XDG_CACHE_HOME/anoean`` or
    ``~/.cache/anoean`` (``%LOCALAPPDATA%\\anoean`` on Windows). Not created here."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "anoean"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "anoean"


def resolve_seed(random_state: Any) -> int:
    """Turn ``random_state`` (None, int, numpy RandomState or Generator) into a 63-bit seed.

    ``None`` draws fresh OS entropy (without touching numpy's global RNG).
    """
    if random_state is None:
        return int(np.random.default_rng().integers(0, 2**63 - 1))
    if isinstance(random_state, (int, np.integer)):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer, got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    raise ValueError(
        f"random_state must be None, an int, a numpy RandomState or Generator; got {random_state!r}"
    )


def make_generators(seed: int, device: Any = "cpu") -> tuple[np.random.Generator, Any]:
    """Return a numpy Generator and a torch Generator (on ``device``) seeded from ``seed``."""
    import torch

    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed % (2**63 - 1))
    return rng, gen


def resolve_device(device: str) -> Any:
    """Map "cpu", "cuda", "cuda:N" or "auto" to a :class:`torch.device`, with a clear error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto'; got {device!r}") from exc


def git_commit(path: str | Path | None = None) -> str | None:
    """The git commit of the working copy holding ``path`` (this package by default), if any."""
    here = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, Any]:
    """Versions of the package and its core dependencies, plus the git commit when available."""
    import safetensors
    import sklearn
    import torch

    from anoean._version import __version__

    return {
        "anoean": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "safetensors": getattr(safetensors, "__version__", "unknown"),
        "python": platform.python_version(),
        "git_commit": git_commit(),
    }
