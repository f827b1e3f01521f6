"""Shared test helpers: where the real data is, and a local HTTP server for downloads."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

#: One valid NSL-KDD line (41 features, label, difficulty).
NSL_LINE = (
    "0,tcp,ftp_data,SF,491,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,1.00,"
    "0.00,0.00,150,25,0.17,0.03,0.17,0.00,0.00,0.00,0.05,0.00,normal,20"
)
#: One valid KDD Cup 99 line (41 features, label with its trailing dot).
KDD99_LINE = (
    "0,udp,private,SF,105,146,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,0.00,0.00,0.00,0.00,1.00,"
    "0.00,0.00,255,254,1.00,0.01,0.00,0.00,0.00,0.00,0.00,0.00,smurf."
)


def data_root() -> Path | None:
    """The real datasets folder from ANOEAN_DATA, or None when unset."""
    env = os.environ.get("ANOEAN_DATA")
    return Path(env) if env else None


#: the four MNIST IDX files, relative to ANOEAN_DATA
MNIST_FILES = tuple(
    f"mnist/{n}.gz"
    for n in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
)


def require_files(*relpaths: str) -> Path:
    """Skip the calling test unless every file exists under ANOEAN_DATA; return the root."""
    root = data_root()
    if root is None:
        pytest.skip("real datasets not available: set ANOEAN_DATA to the shared datasets folder")
    missing = [p for p in relpaths if not (root / p).is_file()]
    if missing:
        pytest.skip(f"real datasets not available: {missing} not under {root}")
    return root


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``corrupt`` paths get other bytes, ``cut`` paths stop early."""

    corrupt: dict[str, bytes] = {}
    cut: dict[str, int] = {}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # keep test output clean

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        if path in self.corrupt:
            body = self.corrupt[path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if path in self.cut:
            local = Path(self.translate_path(path))
            body = local.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: self.cut[path]])
            self.close_connection = True
            return
        super().do_GET()


@contextlib.contextmanager
def serve(
    directory: Path, *, corrupt: dict[str, bytes] | None = None, cut: dict[str, int] | None = None
) -> Iterator[str]:
    """Run an HTTP server on 127.0.0.1 over ``directory``; yield its base URL."""
    handler = type("H", (_Handler,), {"corrupt": corrupt or {}, "cut": cut or {}})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
