"""Finding data files in the data home, and downloading missing ones with verification.

A download goes to a temporary file in the destination folder and is renamed into place only
after its SHA-256 matched; on any failure the temporary file is removed, so a data home never
holds a half-written or unverified file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterable
from pathlib import Path

from anoean.core.runtime import user_cache_dir
from anoean.data.datasets._registry import FILES, RemoteFile

__all__ = [
    "ChecksumError",
    "DatasetNotFoundError",
    "fetch",
    "find_file",
    "get_data_home",
    "verify",
]

logger = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class DatasetNotFoundError(FileNotFoundError):
    """Data files are missing and could not be downloaded (or downloading was disabled)."""


class ChecksumError(OSError):
    """A file's SHA-256 is not the known one."""


def get_data_home(data_home: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the datasets.

    Chosen from, in order: the ``data_home`` argument, the ``ANOEAN_DATA`` environment
    variable, then a per-user cache folder (``$XDG_CACHE_HOME/anoean`` or
    ``~/.cache/anoean``; ``%LOCALAPPDATA%\\anoean`` on Windows). The folder is not created
    here; a download creates it.

    Each dataset lives in its own sub-folder, as in the shared datasets folder:
    ``nsl-kdd/``, ``kddcup99/`` and ``mnist/``.
    """
    if data_home is not None:
        return Path(data_home).expanduser()
    env = os.environ.get("ANOEAN_DATA")
    if env:
        return Path(env).expanduser()
    return user_cache_dir()


def find_file(name: str, data_home: str | os.PathLike[str] | None = None) -> Path | None:
    """The local copy of a registered file (``name`` or ``name.gz``), or None."""
    spec = FILES[name]
    folder = get_data_home(data_home) / spec.folder
    for candidate in (folder / spec.name, folder / f"{spec.name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _sha256_gunzipped(path: Path) -> str | None:
    """SHA-256 of a gzip file's content, or None when it is not valid gzip."""
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return h.hexdigest()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _matches(path: Path, spec: RemoteFile, digest: str | None = None) -> tuple[bool, str]:
    """Whether ``path`` holds ``spec``'s content; also return the file's own SHA-256."""
    digest = digest or _sha256_file(path)
    if digest in (spec.sha256_gz, spec.sha256_raw):
        return True, digest
    if _is_gzip(path):
        # same content in a gzip with another header (time stamp, file name, level)
        return _sha256_gunzipped(path) == spec.sha256_raw, digest
    return False, digest


def verify(names: Iterable[str], data_home: str | os.PathLike[str] | None = None) -> None:
    """Check the local copies of registered files against their known SHA-256.

    Raises
    ------
    DatasetNotFoundError
        A file is absent.
    ChecksumError
        A file's content is not the known one.
    """
    for name in names:
        path = find_file(name, data_home)
        if path is None:
            raise DatasetNotFoundError(
                f"{name} is not in {get_data_home(data_home) / FILES[name].folder}"
            )
        ok, digest = _matches(path, FILES[name])
        if not ok:
            raise ChecksumError(_mismatch_message(path, FILES[name], digest))


def _mismatch_message(where: object, spec: RemoteFile, digest: str) -> str:
    return (
        f"checksum mismatch for {spec.name} ({where}): SHA-256 {digest}, expected "
        f"{spec.sha256_gz} (gzip as distributed) or {spec.sha256_raw} (uncompressed content)"
    )


def _mirror_urls(spec: RemoteFile, base_url: str) -> tuple[str, ...]:
    base = base_url.rstrip("/")
    quoted = urllib.parse.quote(spec.name)
    return (f"{base}/{spec.folder}/{quoted}.gz", f"{base}/{spec.folder}/{quoted}")


def _download(url: str, spec: RemoteFile, folder: Path, timeout: float) -> Path:
    """Fetch one URL into ``folder``; verified, renamed into place, or nothing left behind."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
                expected = resp.headers.get("Content-Length")
                while chunk := resp.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        if expected is not None and int(expected) != size:
            raise OSError(f"incomplete download: {size} of {expected} bytes")
        ok, digest = _matches(tmp, spec, h.hexdigest())
        if not ok:
            raise ChecksumError(
                _mismatch_message(url, spec, digest)
                + f". The download was discarded; nothing was written to {folder}"
            )
        final = folder / (f"{spec.name}.gz" if _is_gzip(tmp) else spec.name)
        os.replace(tmp, final)
        logger.info("downloaded %s from %s to %s (SHA-256 verified)", spec.name, url, final)
        return final
    finally:
        if tmp.exists():
            tmp.unlink()


def fetch(
    names: Iterable[str],
    data_home: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    base_url: str | None = None,
    timeout: float = 60.0,
) -> dict[str, Path]:
    """Local paths of registered files, downloading the missing ones.

    Parameters
    ----------
    names : iterable of str
        File names as in ``FILES`` (without ``.gz``), e.g. ``"KDDTrain+.txt"``.
    data_home : path, optional
        See :func:`get_data_home`.
    download : bool, default True
        Download missing files; when False a missing file raises at once.
    base_url : str, optional
        A mirror to use instead of the public URLs. It must be laid out like the data home:
        ``{base_url}/{folder}/{name}.gz`` or ``{base_url}/{folder}/{name}``
        (e.g. an HTTP server over the shared datasets folder).
    timeout : float, default 60
        Socket time-out in seconds for each request.

    Returns
    -------
    dict of str -> pathlib.Path

    Raises
    ------
    DatasetNotFoundError
        Files are missing and were not (or could not be) downloaded. The message lists every
        missing file, the folder it belongs in, and the URLs to get it from.
    ChecksumError
        A downloaded file does not match its SHA-256 (it is discarded).
    """
    home = get_data_home(data_home)
    found: dict[str, Path] = {}
    missing: list[RemoteFile] = []
    for name in names:
        if name not in FILES:
            raise KeyError(f"unknown data file {name!r}; known: {sorted(FILES)}")
        path = find_file(name, home)
        if path is None:
            missing.append(FILES[name])
        else:
            found[name] = path
    failures: dict[str, list[str]] = {}
    for spec in missing if download else ():
        folder = home / spec.folder
        urls = spec.urls if base_url is None else _mirror_urls(spec, base_url)
        errors: list[str] = []
        created = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            failures[spec.name] = [f"cannot create {folder}: {exc}"]
            continue
        try:
            for url in urls:
                try:
                    found[spec.name] = _download(url, spec, folder, timeout)
                    break
                except ChecksumError:
                    raise  # wrong bytes are a red flag: never quietly try the next mirror
                except (
                    urllib.error.URLError,
                    http.client.HTTPException,
                    OSError,
                    ValueError,
                ) as exc:
                    logger.warning("could not download %s from %s: %s", spec.name, url, exc)
                    errors.append(f"{url}: {exc}")
            else:
                failures[spec.name] = errors
        finally:
            if created and spec.name not in found and not any(folder.iterdir()):
                folder.rmdir()  # leave the data home as it was
    still_missing = [s for s in missing if s.name not in found]
    if still_missing:
        raise DatasetNotFoundError(
            _missing_message(still_missing, home, download, base_url, failures)
        )
    return found


def _missing_message(
    specs: list[RemoteFile],
    home: Path,
    download: bool,
    base_url: str | None,
    failures: dict[str, list[str]],
) -> str:
    why = "could not be downloaded" if download else "are missing (download=False)"
    lines = [f"{len(specs)} data file(s) {why}:"]
    for spec in specs:
        urls = spec.urls if base_url is None else _mirror_urls(spec, base_url)
        lines.append(f"  {spec.name} (or {spec.name}.gz) belongs in {home / spec.folder}")
        lines.extend(f"      get it from {u}" for u in urls)
        lines.extend(f"      error: {e}" for e in failures.get(spec.name, ()))
    lines.append(
        "Put the files there yourself (plain or gzip-compressed), point ANOEAN_DATA or "
        "data_home at a folder that has them, or retry with network access."
    )
    return "\n".join(lines)
