"""Fetch the real datasets once, check their hashes, and keep them for a class without internet.

The command (chapter 9 and ``book/teaching.md``)::

    python -m shufflelib.data prefetch --root DIR [--dataset cifar10 imagenette-160 ...]

For each dataset it makes sure that ``DIR/<archive>`` is there with the archive's published MD5
(the hashes torchvision checks), then unpacks it into ``DIR/<folder>`` and checks the unpacked
files whose hashes are published. ``cifar10(DIR)`` and ``image_folder(DIR/imagenette2-160/train)``
then load them offline. Re-running it is cheap and safe:

- a verified archive or folder is never downloaded, unpacked or written again;
- downloads and unpacking go to temporary names in ``DIR`` and are renamed into place only once
  verified, so an interrupted run never leaves a half-written file under the final name; a damaged
  folder is renamed aside (``*.damaged-N``), not deleted;
- without the network it fails at once with what to do: a bounded connection probe runs before
  any download, and a started download that stalls gives up after ``timeout`` seconds. Archives
  copied into ``DIR`` by hand (from a machine with internet) are verified and unpacked offline.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .data import CIFAR10_URL

__all__ = ["Archive", "DATASETS", "md5sum", "fetch", "extract", "prefetch", "main"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """A dataset archive: where it comes from, its published MD5, and what it unpacks to.

    ``files`` lists paths inside ``folder`` that must exist after unpacking, each with its MD5
    (or ``None`` to check only that it exists).
    """

    name: str
    url: str
    filename: str
    md5: str
    folder: str
    files: tuple[tuple[str, str | None], ...] = ()
    size: str = ""


def _imagenette(size: str, stem: str, md5: str, mb: str) -> Archive:
    return Archive(
        name=f"imagenette-{size}" if size != "full" else "imagenette",
        url=f"https://s3.amazonaws.com/fast-ai-imageclas/{stem}.tgz",
        filename=f"{stem}.tgz",
        md5=md5,
        folder=stem,
        files=(("train", None), ("val", None)),
        size=mb,
    )


# The URLs and MD5s are the ones torchvision's CIFAR10 and Imagenette datasets check
# (tests/test_prefetch.py compares them with the installed torchvision).
DATASETS: dict[str, Archive] = {
    "cifar10": Archive(
        name="cifar10",
        url=CIFAR10_URL,
        filename="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        files=(
            ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            ("data_batch_4", "634d18415352ddfa80567beed471001a"),
            ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            ("test_batch", "40351d587109b95175f43aff81a1287e"),
            ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        ),
        size="163 MB",
    ),
    "imagenette-160": _imagenette(
        "160", "imagenette2-160", "e793b78cc4c9e9a4ccc0c1155377a412", "94 MB"
    ),
    "imagenette-320": _imagenette(
        "320", "imagenette2-320", "3df6f0d01a2c9592104656642f5e78a3", "341 MB"
    ),
    "imagenette": _imagenette("full", "imagenette2", "fe2fc210e6bb7c5664d602c3cd71e612", "1.5 GB"),
}


def md5sum(path: str | os.PathLike) -> str:
    """The MD5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_archive(archive: object) -> Archive:
    if not isinstance(archive, Archive):
        raise TypeError(f"archive must be a shufflelib.prefetch.Archive, got {archive!r}")
    return archive


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    return float(timeout)


def _check_root(root: object) -> Path:
    if not isinstance(root, str | os.PathLike):
        raise TypeError(f"root must be a str or os.PathLike path, got {root!r}")
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise ValueError(f"root must be a folder, but {str(path)!r} is a file")
    return path


def _how_to_get(archive: Archive, dest: Path) -> str:
    return (
        f"To get it without this machine's network, download {archive.url} "
        f"({archive.size or 'size unknown'}) on a machine with internet, check that its MD5 is "
        f"{archive.md5}, copy it to {str(dest)!r} and run the same command again: it verifies "
        "and unpacks the copy offline."
    )


def _reachable(url: str, timeout: float) -> str | None:
    """None if the download's host (or HTTPS proxy) answers within ``timeout``, else why not."""
    if urlparse(url).scheme == "file":
        return None
    from .models import _probe, _probe_target  # one bounded probe for weights and data

    host, port = _probe_target(url)
    reason = _probe(host, port, timeout)
    return None if reason is None else f"cannot reach {host}:{port} ({reason})"


def _download(url: str, dest: Path, expected_md5: str, timeout: float, progress: bool) -> None:
    """Stream ``url`` into a temporary file beside ``dest``; rename it to ``dest`` once verified."""
    from tqdm.auto import tqdm

    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out:
            # timeout bounds the connection and every read: a stalled download raises
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=not progress,
                    leave=False,
                ) as bar:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected_md5:
            raise RuntimeError(
                f"the file downloaded from {url} has MD5 {digest.hexdigest()}, expected "
                f"{expected_md5}: the download is damaged or the file changed; nothing was kept"
            )
        os.replace(tmp, dest)
    except OSError as e:  # URLError, HTTPError, timeouts, resets, a full disk
        raise RuntimeError(
            f"downloading {url} failed ({type(e).__name__}: {e}); nothing was kept"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    archive: Archive,
    root: str | os.PathLike,
    timeout: float = 10.0,
    progress: bool = True,
    log: Callable[[str], object] = print,
) -> Path:
    """Make sure ``root/archive.filename`` is there with the published MD5; download it if not.

    A verified archive is left as it is. One with the wrong MD5 is replaced only by a download
    that verifies. Offline, raises ``RuntimeError`` at once, saying how to bring the file in.
    """
    archive = _check_archive(archive)
    root = _check_root(root)
    timeout = _check_timeout(timeout)
    root.mkdir(parents=True, exist_ok=True)
    dest = root / archive.filename
    damaged = ""
    if dest.exists():
        found = md5sum(dest)
        if found == archive.md5:
            log(f"{archive.name}: {dest} is there, MD5 verified")
            return dest
        damaged = (
            f" {str(dest)!r} is there but has MD5 {found}, expected {archive.md5} (a damaged or "
            "different file; it was left as it is)."
        )
    reason = _reachable(archive.url, timeout)
    if reason is not None:
        raise RuntimeError(
            f"cannot download {archive.name} from {archive.url}: {reason}. This machine seems to "
            f"have no internet access.{damaged} " + _how_to_get(archive, dest)
        )
    log(f"{archive.name}: downloading {archive.url} ({archive.size or 'size unknown'})")
    try:
        _download(archive.url, dest, archive.md5, timeout, progress)
    except RuntimeError as e:
        raise RuntimeError(f"{e}.{damaged} " + _how_to_get(archive, dest)) from e
    log(f"{archive.name}: saved {dest}, MD5 verified")
    return dest


def _folder_problem(archive: Archive, folder: Path) -> str | None:
    """None if ``folder`` holds every listed file with its MD5, else the first problem."""
    if not folder.is_dir():
        return f"{folder} is missing"
    for rel, md5 in archive.files:
        path = folder / rel
        if not path.exists():
            return f"{path} is missing"
        if md5 is not None and md5sum(path) != md5:
            return f"{path} has MD5 {md5sum(path)}, expected {md5}"
    return None


def _safe_extract(tar: tarfile.TarFile, into: Path) -> None:
    if hasattr(tarfile, "data_filter"):  # Python 3.10.12+, 3.11.4+: refuses links out, devices
        tar.extractall(into, filter="data")
        return
    base = into.resolve()
    for member in tar.getmembers():  # the same rule by hand for older Pythons
        target = (into / member.name).resolve()
        if not (target == base or base in target.parents) or member.issym() or member.islnk():
            raise tarfile.TarError(f"refusing to unpack {member.name!r}: it points outside")
    tar.extractall(into)  # noqa: S202 - members checked above


def extract(
    archive: Archive, root: str | os.PathLike, log: Callable[[str], object] = print
) -> Path:
    """Unpack ``root/archive.filename`` into ``root/archive.folder`` unless it is there and good.

    Unpacks into a temporary folder in ``root`` and renames it into place once its files check
    out; a damaged existing folder is renamed to ``<folder>.damaged-N`` first, never deleted.
    """
    archive = _check_archive(archive)
    root = _check_root(root)
    folder = root / archive.folder
    problem = _folder_problem(archive, folder)
    if problem is None:
        log(f"{archive.name}: {folder} is there, files verified")
        return folder
    src = root / archive.filename
    if not src.exists():
        raise FileNotFoundError(f"{src} is missing: fetch it first ({problem})")
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{archive.folder}.", suffix=".unpacking"))
    try:
        try:
            with tarfile.open(src) as tar:
                _safe_extract(tar, tmp)
        except (tarfile.TarError, OSError) as e:
            raise RuntimeError(f"cannot unpack {src} ({type(e).__name__}: {e})") from e
        unpacked = tmp / archive.folder
        bad = _folder_problem(archive, unpacked)
        if bad is not None:
            raise RuntimeError(
                f"{src} did not unpack to the expected files ({bad.replace(str(tmp), str(root))})"
            )
        if folder.exists() or folder.is_symlink():
            aside = _free_name(root, f"{archive.folder}.damaged")
            folder.rename(aside)
            log(f"{archive.name}: {folder} was incomplete or damaged ({problem}); moved to {aside}")
        os.replace(unpacked, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{archive.name}: unpacked {folder}, files verified")
    return folder


def _free_name(root: Path, stem: str) -> Path:
    n = 1
    while (root / f"{stem}-{n}").exists():
        n += 1
    return root / f"{stem}-{n}"


def prefetch(
    root: str | os.PathLike,
    names: Iterable[str] = ("cifar10",),
    timeout: float = 10.0,
    progress: bool = True,
    log: Callable[[str], object] = print,
) -> dict[str, Path]:
    """Fetch, verify and unpack each dataset in ``names`` under ``root``; returns their folders."""
    root = _check_root(root)
    timeout = _check_timeout(timeout)
    if isinstance(names, str):
        names = [names]
    names = list(names)
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        raise ValueError(f"datasets must be some of {sorted(DATASETS)}, got {names!r}")
    folders = {}
    for name in names:
        archive = DATASETS[name]
        fetch(archive, root, timeout=timeout, progress=progress, log=log)
        folders[name] = extract(archive, root, log=log)
    return folders


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python -m shufflelib.data prefetch --root DIR [--dataset ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m shufflelib.data",
        description="Tools for shufflebook's datasets (the embedded dataset needs none of them).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "prefetch",
        help="download, verify (MD5) and unpack real datasets for offline use",
        description=(
            "Download, verify and unpack real datasets under --root, for a class without "
            "internet. Verified files are never downloaded or written again; archives copied "
            "into --root by hand are verified and unpacked offline."
        ),
    )
    p.add_argument("--root", required=True, help="folder to keep the archives and datasets in")
    p.add_argument(
        "--dataset",
        nargs="+",
        default=["cifar10"],
        choices=sorted(DATASETS),
        metavar="NAME",
        help=f"datasets to fetch, some of {', '.join(sorted(DATASETS))} (default: cifar10)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for a connection or for the next bytes of a download (default 10)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        folders = prefetch(
            args.root, args.dataset, timeout=args.timeout, progress=not args.quiet, log=print
        )
    except (RuntimeError, OSError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, folder in folders.items():
        print(f"{name}: ready in {folder}")
    return 0
