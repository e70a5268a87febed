"""Downloads for the whole book: a bounded reachability probe and one hash-checked download.

Chapter 9 fetches CIFAR-10 and Imagenette (:mod:`shufflelib.prefetch`, :func:`shufflelib.data.
cifar10`), chapters 6-8 torchvision's ImageNet weights (:func:`shufflelib.models.
load_torchvision_weights`), and the book's build its own copy of MathJax (``_ext/offline_site.py``).
They all go through here:

- :func:`unreachable` says, within ``timeout`` seconds, why the host of a URL (or the proxy in
  front of it) does not answer, or None if it does: a class without internet gets a clear message
  at once instead of a download that hangs. :func:`probe` is the TCP check behind it, run in a
  thread so that the DNS lookup is bounded too; :func:`endpoint` is where a download connects.
- :func:`download` streams a URL into a temporary file beside its destination, checks the file's
  MD5, SHA-256 or SHA-512 and only then renames it into place: the destination is either absent
  or complete and verified, never half written. The timeout bounds the connection and every read
  (passed to ``urlopen``; the process-wide socket timeout is never touched).

Ground floor: imports only :mod:`shufflelib.validate` and the standard library (tqdm draws the
progress bar when one is asked for).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import tempfile
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from . import validate

__all__ = ["Unavailable", "HASHES", "probe", "endpoint", "unreachable", "file_digest", "download"]


class Unavailable(RuntimeError):
    """A file could not be had: no network, a download that failed or was damaged, an archive
    that would not unpack. The message says what failed and how to get the file another way."""


CHUNK = 1 << 20  # bytes read and hashed at a time
# The hashes download() checks, by hashlib's name, with the name messages use.
HASHES = {"md5": "MD5", "sha256": "SHA-256", "sha512": "SHA-512"}
_HEX = re.compile(r"[0-9a-f]{8,}")


def probe(host: str, port: int, timeout: float) -> str | None:
    """None if a TCP connection to ``host:port`` opens within ``timeout`` s, else the reason.

    The connection runs in a daemon thread that is given up on after ``timeout``: the socket's
    own timeout does not cover the DNS lookup, which can hang for much longer without a network.
    """
    validate.text("host", host)
    validate.integer("port", port, 1, 65535)
    timeout = validate.number("timeout", timeout, above=0)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as e:  # gaierror (no DNS), timeout, unreachable, refused
            outcome.append(f"{type(e).__name__}: {e}")

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"no answer within {timeout:g} s"
    return outcome[0]


def endpoint(url: str) -> tuple[str, int]:
    """``(host, port)`` that a download of ``url`` connects to: its proxy's when one is set."""
    parsed = urlparse(validate.text("url", url))
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(parsed.hostname or ""):
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    return parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)


def unreachable(url: str, timeout: float) -> str | None:
    """Why ``url``'s host (or proxy) does not answer within ``timeout`` s; None if it does.

    A ``file://`` URL needs no network and is always reachable. Chapters 6-9 call it before a
    download, so that a machine without internet fails at once and says so.
    """
    validate.text("url", url)
    timeout = validate.number("timeout", timeout, above=0)
    if urlparse(url).scheme == "file":
        return None
    host, port = endpoint(url)
    reason = probe(host, port, timeout)
    return None if reason is None else f"cannot reach {host}:{port} ({reason})"


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """The hex digest of a file (``"md5"``, ``"sha256"`` or ``"sha512"``), read in 1 MiB chunks."""
    path = validate.path("path", path)
    validate.choice("algorithm", algorithm, tuple(HASHES))
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_hash(hashes: dict[str, str | None]) -> tuple[str, str]:
    given = {k: v for k, v in hashes.items() if v is not None}
    if len(given) != 1:
        raise ValueError(
            f"download needs exactly one of md5=, sha256=, sha512=, got {sorted(given) or 'none'}"
        )
    ((algorithm, expected),) = given.items()
    validate.text(algorithm, expected)
    full = hashlib.new(algorithm, usedforsecurity=False).digest_size * 2
    if not _HEX.fullmatch(expected) or len(expected) > full:
        raise ValueError(
            f"{algorithm} must be the lower-case hex digest or a prefix of it of at least 8 "
            f"digits ({full} in full), got {expected!r}"
        )
    return algorithm, expected


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    sha512: str | None = None,
    timeout: float = 30.0,
    progress: bool = False,
) -> Path:
    """Download ``url`` to ``dest``, verified by its hash, atomically; chapters 6-9 and the build.

    Exactly one of ``md5``, ``sha256``, ``sha512`` gives the expected hex digest, or a prefix of
    it (at least 8 digits: torch hub's weight files carry the first 8 to 10 of their SHA-256 in
    their names). The bytes stream into a temporary file beside ``dest``; once the hash matches,
    the file is flushed to disk and renamed to ``dest`` (replacing a file there). ``timeout``
    bounds the connection and every read, so a stalled download gives up. Any failure (network,
    HTTP, disk, a wrong hash) raises ``RuntimeError`` saying what happened and leaves nothing
    behind. Call :func:`unreachable` first for a fast answer without a network. Returns ``dest``.
    """
    validate.text("url", url)
    dest = Path(validate.path("dest", dest))
    algorithm, expected = _expected_hash({"md5": md5, "sha256": sha256, "sha512": sha512})
    timeout = validate.number("timeout", timeout, above=0)
    validate.flag("progress", progress)
    if not dest.parent.is_dir():
        raise ValueError(f"dest must be in an existing folder, got {str(dest)!r}")
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            found = _stream(url, out, algorithm, timeout, progress, dest.name)
            out.flush()
            os.fsync(out.fileno())
        if not found.startswith(expected):
            raise Unavailable(
                f"the file downloaded from {url} has {HASHES[algorithm]} {found}, expected "
                f"{expected}: the download is damaged or the file changed; nothing was kept"
            )
        os.replace(tmp, dest)
    except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets, full disk
        raise Unavailable(
            f"downloading {url} failed ({type(e).__name__}: {e}); nothing was kept"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _stream(url: str, out, algorithm: str, timeout: float, progress: bool, label: str) -> str:
    """Copy ``url`` into the open file ``out``; return the hex digest of what was copied."""
    from tqdm.auto import tqdm  # only when something is downloaded

    digest = hashlib.new(algorithm, usedforsecurity=False)
    # timeout bounds the connection and every read: a stalled download raises
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = tqdm(
            total=total, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False
        )
        with bar:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()
