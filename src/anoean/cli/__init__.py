"""Command-line interface: a thin shell over the library (one verb per library entry point).

``fit``, ``score``, ``evaluate``, ``export`` and ``report`` call :mod:`anoean.serve.pipeline`,
:mod:`anoean.export` and :mod:`anoean.serve.report`; this module only parses options, prints, and
turns errors into a one-line message and exit status 1.

The ``main`` group and its signal handling are here; the verbs are in
:mod:`~anoean.cli.fitting` (``fit``, ``methods``, ``export``), :mod:`~anoean.cli.scoring`
(``score``, ``evaluate``, ``report``) and :mod:`~anoean.cli.paper` (``demo``,
``reproduce``), the shared options and error handling in :mod:`~anoean.cli.common`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from anoean.cli.common import set_log_level
from anoean.cli.fitting import export, fit, methods
from anoean.cli.paper import demo, reproduce
from anoean.cli.scoring import evaluate, report, score

__all__ = [
    "demo",
    "evaluate",
    "export",
    "fit",
    "main",
    "methods",
    "report",
    "reproduce",
    "score",
]

logger = logging.getLogger("anoean")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="anoean")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log more (repeat for debug and tracebacks); also after the verb.",
)
@click.option("--quiet", is_flag=True, help="No progress bars; also after the verb.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """anoean: semi-supervised anomaly detection with an Encoding Adversarial Network."""
    _exit_cleanly_on_signals()
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    set_log_level(verbose)
    ctx.obj = {"verbose": verbose, "quiet": quiet}


def _terminate(signum: int, frame: Any) -> None:
    # SystemExit unwinds the stack like Ctrl-C does, so every temporary file is removed by
    # the code that made it (the atomic writers' cleanup), then the process exits 128 + N
    raise SystemExit(128 + signum)


def _exit_cleanly_on_signals() -> None:
    """SIGTERM (sent by timeout, systemd, Kubernetes) and SIGHUP end the command as SIGINT
    does, leaving no temporary file behind, instead of killing the process on the spot."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _terminate)


main.add_command(demo)
main.add_command(fit)
main.add_command(methods)
main.add_command(score)
main.add_command(evaluate)
main.add_command(export)
main.add_command(report)
main.add_command(reproduce)
