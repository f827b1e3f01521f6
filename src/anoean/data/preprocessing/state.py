"""The fitted state of a :class:`~anoean.data.preprocessing.TabularPreprocessor` as plain
JSON: what :meth:`~anoean.data.preprocessing.TabularPreprocessor.to_dict` writes, and the
checks :meth:`~anoean.data.preprocessing.TabularPreprocessor.from_dict` makes on what it
reads back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_FORMAT = "anoean.TabularPreprocessor"
_VERSION = 1


def state_dict(pre: Any) -> dict[str, Any]:
    """The parameters and fitted state of a fitted preprocessor as plain JSON-compatible
    values (:meth:`~anoean.data.preprocessing.TabularPreprocessor.to_dict`)."""
    return {
        "format": _FORMAT,
        "version": _VERSION,
        "params": {
            "categorical": pre.categorical,
            "exclude": pre.exclude,
            "unknown": pre.unknown,
            "scaling": pre.scaling,
        },
        "input_columns": pre.input_columns_,
        "numeric_columns": pre.numeric_columns_,
        "categorical_columns": pre.categorical_columns_,
        "categories": pre.categories_,
        # Python floats round-trip exactly through JSON (shortest repr)
        "data_min": [float(v) for v in pre.data_min_],
        "data_max": [float(v) for v in pre.data_max_],
        "feature_names_out": pre.feature_names_out_,
    }


def check_format(state: Any) -> None:
    """Refuse what is not a serialised preprocessor, or one of another format version."""
    if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
        raise ValueError(f"not a serialised TabularPreprocessor (format != {_FORMAT!r})")
    if state.get("version") != _VERSION:
        raise ValueError(
            f"unsupported TabularPreprocessor format version {state.get('version')!r}; "
            f"this anoean reads version {_VERSION}"
        )


def check_consistent(pre: Any) -> None:
    """Refuse fitted attributes read back from a state that do not fit together."""
    k = len(pre.numeric_columns_)
    if pre.data_min_.shape != (k,) or pre.data_max_.shape != (k,):
        raise ValueError(
            "malformed TabularPreprocessor state: data_min/data_max do not "
            f"match the {k} numeric columns"
        )
    if set(pre.categories_) != set(pre.categorical_columns_):
        raise ValueError(
            "malformed TabularPreprocessor state: categories do not match categorical_columns"
        )
    if sorted(pre.input_columns_) != sorted(pre.numeric_columns_ + pre.categorical_columns_):
        raise ValueError(
            "malformed TabularPreprocessor state: input_columns is not the "
            "union of numeric_columns and categorical_columns"
        )


def check_feature_names(state: Mapping[str, Any], feature_names_out: list[str]) -> None:
    """Refuse a state whose ``feature_names_out`` (optional) differ from those derived."""
    if "feature_names_out" in state and list(state["feature_names_out"]) != feature_names_out:
        raise ValueError(
            "malformed TabularPreprocessor state: feature_names_out does not match the categories"
        )
