"""What every verb of the command line shares: :func:`_errors` (bad input -> a one-line
error and exit status 1; warnings -> ``warning:`` lines), the label and CSV options, and
the parsing and printing helpers.

Nothing here imports more than click at import time, so that ``anoean --help`` stays fast
(and ``anoean score`` imports neither torch nor scikit-learn).
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import click


@contextlib.contextmanager
def _errors(ctx: click.Context) -> Iterator[None]:
    """Bad input -> ``error: <message>`` on stderr and exit status 1 (a traceback with -vv);
    warnings -> ``warning: <message>`` on stderr as they happen."""
    from anoean.core.modelfile import ModelFileError
    from anoean.data.tables import DataError

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        click.echo(f"warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        try:
            yield
        except (
            DataError,
            ModelFileError,
            FileExistsError,
            FileNotFoundError,
            ValueError,
            ImportError,
        ) as exc:
            if (ctx.obj or {}).get("verbose", 0) >= 2:
                raise
            raise click.ClickException(str(exc)) from exc


def _csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--param")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw  # a bare string such as device=cpu
    return out


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def _metrics_lines(m: dict[str, Any]) -> list[str]:
    lines = []
    if "aucpr" in m:
        lines.append(
            f"  AUC-PR {_fmt(m['aucpr'])}   AUROC {_fmt(m['auroc'])}   "
            f"best F1 {_fmt(m['best_f1'])} "
            f"(there {_fmt(m['false_discovery_rate'], True)} of the alarms are false, recall "
            f"{_fmt(m['recall'], True)})"
        )
    budget = m.get("false_positive_budget")
    lines.append(
        f"  at the model's threshold {m['threshold']:.4g}: false-positive rate "
        f"{_fmt(m['false_positive_rate'], True)} (normal rows that raise an alarm"
        + (f"; budget {_fmt(budget, True)}" if budget is not None else "")
        + f"), recall {_fmt(m.get('recall_at_threshold'), True)}"
    )
    return lines


# --------------------------------------------------------------------------- options
_label_options = [
    click.option(
        "--anomaly-value",
        "anomaly_values",
        multiple=True,
        metavar="VALUE",
        help="A label value meaning 'anomaly' (repeatable); other values are normal unless "
        "--normal-value is also given.",
    ),
    click.option(
        "--normal-value",
        "normal_values",
        multiple=True,
        metavar="VALUE",
        help="A label value meaning 'normal' (repeatable); other values are anomalies unless "
        "--anomaly-value is also given.",
    ),
]


def set_log_level(verbose: int) -> None:
    """WARNING by default; INFO with -v; DEBUG with -vv."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.getLogger("anoean").setLevel(level)
    logging.getLogger().setLevel(level)


def _add_verbose(ctx: click.Context, param: Any, value: int) -> None:
    if value:
        obj = ctx.ensure_object(dict)
        obj["verbose"] = obj.get("verbose", 0) + value
        set_log_level(obj["verbose"])


def _add_quiet(ctx: click.Context, param: Any, value: bool) -> None:
    if value:
        ctx.ensure_object(dict)["quiet"] = True


def _quiet(ctx: click.Context | None = None) -> bool:
    """Whether --quiet was given, before the verb or after it."""
    ctx = ctx or click.get_current_context()
    return bool((ctx.obj or {}).get("quiet"))


#: -v and --quiet, which every verb takes after its name as well as before it
_output_options = [
    click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_add_verbose,
        help="Log more (repeat for debug and tracebacks); also accepted before the verb.",
    ),
    click.option(
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_add_quiet,
        help="No progress bars; also accepted before the verb.",
    ),
]


def _with(options: list[Any]) -> Any:
    """A decorator adding each of ``options`` to a command, in the order listed."""

    def add(f: Any) -> Any:
        for opt in reversed(options):
            f = opt(f)
        return f

    return add


_with_output_options = _with(_output_options)

#: the default of --na-values, as shown in --help (anoean.data.tables.DEFAULT_NA_VALUES)
_NA_HELP = "?,-,--,n/a,N/A,NA,na,#N/A,null,NULL,None,none,<NA>"

_csv_options = [
    click.option(
        "--sep",
        default=",",
        show_default=True,
        help="Field separator of CSV input: one character, or 'tab'.",
    ),
    click.option(
        "--encoding",
        default="utf-8",
        show_default=True,
        help="Text encoding of CSV input (e.g. latin-1, utf-16).",
    ),
    click.option(
        "--na-values",
        default=None,
        metavar="TOKENS",
        help="Comma-separated tokens read as missing values in every column, in place of "
        f"the default list ({_NA_HELP}); an empty field is always missing. Missing values "
        "follow the NaN policy: refused at fit, unscorable at score.",
    ),
    click.option(
        "--block-size",
        type=click.IntRange(1024),
        default=None,
        metavar="BYTES",
        help="CSV reader block size (default: automatic, at least 1 MiB); raise it for "
        "rows or quoted fields longer than that.",
    ),
]

_with_label_options = _with(_label_options)
_with_csv_options = _with(_csv_options)


def _csv(sep: str, encoding: str, na_values: str | None, block_size: int | None) -> Any:
    from anoean.data.tables import DEFAULT_NA_VALUES, CsvOptions

    if sep.lower() in ("tab", "\\t"):
        sep = "\t"
    if len(sep) != 1:
        raise click.BadParameter(
            f"expected one character or 'tab', got {sep!r}", param_hint="--sep"
        )
    tokens = (
        DEFAULT_NA_VALUES
        if na_values is None
        else tuple(t.strip() for t in na_values.split(",") if t.strip())
    )
    return CsvOptions(sep=sep, encoding=encoding, na_values=tokens, block_size=block_size)
