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
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import net, validate

__all__ = ["Archive", "DATASETS", "fetch", "extract", "prefetch", "main"]


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
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
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


def _folder(name: str, root: object) -> Path:
    path = Path(validate.path(name, root))
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} must be a folder, but {str(path)!r} is a file")
    return path


def _how_to_get(archive: Archive, dest: Path) -> str:
    return (
        f"To get it without this machine's network, download {archive.url} "
        f"({archive.size or 'size unknown'}) on a machine with internet, check that its MD5 is "
        f"{archive.md5}, copy it to {str(dest)!r} and run the same command again: it verifies "
        "and unpacks the copy offline."
    )


def fetch(
    archive: Archive,
    root: str | os.PathLike,
    timeout: float = 10.0,
    progress: bool = True,
    log: Callable[[str], object] = print,
) -> Path:
    """Make sure ``root/archive.filename`` is there with the published MD5, else download it; ch. 9.

    A verified archive is left as it is. One with the wrong MD5 is replaced only by a download
    that verifies. Offline, raises ``RuntimeError`` at once, saying how to bring the file in.
    """
    validate.instance("archive", archive, Archive)
    root = _folder("root", root)
    timeout = validate.number("timeout", timeout, above=0)
    validate.flag("progress", progress)
    validate.function("log", log)
    root.mkdir(parents=True, exist_ok=True)
    dest = root / archive.filename
    damaged = ""
    if dest.exists():
        found = net.file_digest(dest, "md5")
        if found == archive.md5:
            log(f"{archive.name}: {dest} is there, MD5 verified")
            return dest
        damaged = (
            f" {str(dest)!r} is there but has MD5 {found}, expected {archive.md5} (a damaged or "
            "different file; it was left as it is)."
        )
    reason = net.unreachable(archive.url, timeout)
    if reason is not None:
        raise net.Unavailable(
            f"cannot download {archive.name} from {archive.url}: {reason}. This machine seems to "
            f"have no internet access.{damaged} " + _how_to_get(archive, dest)
        )
    log(f"{archive.name}: downloading {archive.url} ({archive.size or 'size unknown'})")
    try:
        net.download(archive.url, dest, md5=archive.md5, timeout=timeout, progress=progress)
    except RuntimeError as e:
        raise net.Unavailable(f"{e}.{damaged} " + _how_to_get(archive, dest)) from e
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
        found = None if md5 is None else net.file_digest(path, "md5")
        if found != md5:
            return f"{path} has MD5 {found}, expected {md5}"
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
    validate.instance("archive", archive, Archive)
    root = _folder("root", root)
    validate.function("log", log)
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
            raise net.Unavailable(f"cannot unpack {src} ({type(e).__name__}: {e})") from e
        unpacked = tmp / archive.folder
        bad = _folder_problem(archive, unpacked)
        if bad is not None:
            raise net.Unavailable(
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
    """Fetch, verify and unpack each dataset in ``names`` under ``root``; their folders; ch. 9.

    A dataset that fails does not stop the others: each is tried, and then one failure is raised
    again as it was, or several as one :class:`shufflelib.net.Unavailable` that names every
    failure and every dataset that is ready."""
    root = _folder("root", root)
    timeout = validate.number("timeout", timeout, above=0)
    names = [names] if isinstance(names, str) else list(validate.instance("names", names, Iterable))
    unknown = [n for n in names if not isinstance(n, str) or n not in DATASETS]
    if unknown or not names:
        raise ValueError(f"names must be some of {sorted(DATASETS)}, got {names!r}")
    folders: dict[str, Path] = {}
    failed: dict[str, Exception] = {}
    for name in names:
        archive = DATASETS[name]
        try:
            fetch(archive, root, timeout=timeout, progress=progress, log=log)
            folders[name] = extract(archive, root, log=log)
        except (RuntimeError, OSError) as e:
            failed[name] = e
    if len(failed) == 1 and not folders:
        raise next(iter(failed.values()))
    if failed:
        ready = (
            f"; ready: {', '.join(f'{n} in {f}' for n, f in folders.items())}" if folders else ""
        )
        raise net.Unavailable(
            f"{len(failed)} of {len(names)} datasets failed: "
            + "; ".join(f"{n}: {e}" for n, e in failed.items())
            + ready
        )
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
