"""The optional ``distributed`` extra: dask, dask.dataframe, dask.distributed and pandas,
imported only when a function of :mod:`anoean.distributed` is called."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRA_HINT = "pip install 'anoean[distributed]'"


def require(module: str) -> ModuleType:
    """Import ``module`` (``"dask"``, ``"dask.dataframe"``, ``"distributed"``, ``"pandas"``).

    Raises
    ------
    ImportError
        The module is not installed; the message names the extra that installs it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"scoring on Dask needs {module!r}, which is not installed ({exc}): {EXTRA_HINT}"
        ) from exc
