"""Error-path scans of a file's raw (decompressed) bytes, vectorised: where a compressed
stream breaks off, the first byte an encoding cannot decode, and long lines or unclosed
quotes. Only called once something went wrong, to name the line."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import numpy as np

from anoean.data.tables.formats import DataError, _chunks, _compression


def _compressed_error(path: Path, exc: Exception) -> DataError:
    """A decompression failure, with the line where the good text ends (error path)."""
    import bz2
    import zlib

    kind = _compression(path)
    if kind is None:
        return DataError(f"{path}: cannot read the file: {exc}")
    lines, pos = 0, 0

    def fresh() -> Any:
        return zlib.decompressobj(wbits=31) if kind == "gzip" else bz2.BZ2Decompressor()

    dec = fresh()
    try:
        with open(path, "rb") as f:
            while raw := f.read(1 << 20):
                while raw:
                    out = dec.decompress(raw)
                    lines += out.count(b"\n")
                    pos += len(out)
                    if not dec.eof:
                        break
                    raw = dec.unused_data  # a concatenated member, if any
                    dec = fresh()
    except (zlib.error, OSError, EOFError, ValueError):
        pass
    return DataError(
        f"{path}: the {kind} data is truncated or corrupt after line {lines} (byte {pos} of "
        f"the decompressed text): {exc}"
    )


def _undecodable(path: Path, codec: str) -> tuple[int, int, int] | None:
    """(byte offset, line, byte value) of the first byte ``codec`` cannot decode (error path)."""
    dec = codecs.getincrementaldecoder(codec)()
    pos, lines = 0, 1
    try:
        for chunk in _chunks(path):
            try:
                dec.decode(chunk)
            except UnicodeDecodeError as e:
                # e.object is the decoder's pending bytes + this chunk
                off = pos + len(chunk) - len(e.object) + e.start
                return off, lines + chunk.count(b"\n", 0, max(off - pos, 0)), e.object[e.start]
            lines += chunk.count(b"\n")
            pos += len(chunk)
        dec.decode(b"", final=True)
    except UnicodeDecodeError as e:  # a sequence cut short by the end of the file
        return pos - len(e.object) + e.start, lines, e.object[e.start]
    except OSError:
        return None
    return None


def _scan_rows(path: Path, block_size: int) -> dict[str, Any]:
    """Long lines and long or unclosed quoted fields, vectorised per 1 MiB (error path).

    Quotes are paired in file order (an escaped ``""`` pairs with itself). Returns, each
    None when there is none: ``long`` = (line, bytes) of the first line longer than
    ``block_size``; ``long_quote`` = (line, bytes) of the first quoted field longer than
    ``block_size``; ``spans`` = line of the opening quote of the first quoted field that
    holds a line break; ``unclosed`` = line of the quote left open at the end of the file
    (the file holds an odd number of quotes); and ``size`` = the bytes read.
    """
    out: dict[str, Any] = {"long": None, "long_quote": None, "spans": None, "unclosed": None}
    pos = 0  # file offset of the chunk
    nlines = 0  # line breaks before the chunk
    line_start = 0  # file offset where the current line starts
    pending: tuple[int, int] | None = None  # (offset, line) of a quote still open

    def pair(o_off: np.ndarray, o_line: np.ndarray, c_off: np.ndarray, c_line: np.ndarray) -> None:
        if out["long_quote"] is None:
            big = np.flatnonzero(c_off - o_off > block_size)
            if big.size:
                i = big[0]
                out["long_quote"] = (int(o_line[i]), int(c_off[i] - o_off[i] + 1))
        if out["spans"] is None:
            sp = np.flatnonzero(c_line != o_line)
            if sp.size:
                out["spans"] = int(o_line[sp[0]])

    try:
        for chunk in _chunks(path):
            a = np.frombuffer(chunk, np.uint8)
            nl = np.flatnonzero(a == 10)
            if out["long"] is None and nl.size:
                starts = np.concatenate(([line_start - pos], nl[:-1] + 1))
                lengths = nl + 1 - starts
                big = np.flatnonzero(lengths > block_size)
                if big.size:
                    out["long"] = (nlines + int(big[0]) + 1, int(lengths[big[0]]))
            qs = np.flatnonzero(a == 34)
            if qs.size:
                q_off = pos + qs
                q_line = nlines + np.searchsorted(nl, qs) + 1
                k = 0
                if pending is not None:  # the first quote closes the field left open
                    pair(np.array([pending[0]]), np.array([pending[1]]), q_off[:1], q_line[:1])
                    pending, k = None, 1
                o_off, o_line = q_off[k::2], q_line[k::2]
                c_off, c_line = q_off[k + 1 :: 2], q_line[k + 1 :: 2]
                m = c_off.size
                pair(o_off[:m], o_line[:m], c_off, c_line)
                if o_off.size > m:
                    pending = (int(o_off[-1]), int(o_line[-1]))
            if nl.size:
                line_start = pos + int(nl[-1]) + 1
            nlines += nl.size
            pos += len(chunk)
    except OSError:
        pass
    if out["long"] is None and pos - line_start > block_size:
        out["long"] = (nlines + 1, pos - line_start)
    if pending is not None:
        out["unclosed"] = pending[1]
        if out["long_quote"] is None and pos - pending[0] > block_size:
            out["long_quote"] = (pending[1], pos - pending[0])
        if out["spans"] is None and pending[1] <= nlines:
            out["spans"] = pending[1]
    out["size"] = pos
    return out
