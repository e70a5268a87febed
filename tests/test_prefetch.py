"""shufflelib.prefetch: hash-checked, atomic, offline-safe dataset pre-fetching.

Everything here is offline: archives are tarballs the tests make, served from file:// URLs. The
download itself (atomic, hash-checked, bounded) is shufflelib.net's, tested in tests/test_net.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import pytest

from shufflelib import data, net, prefetch
from shufflelib.prefetch import DATASETS, Archive

REPO = Path(__file__).resolve().parents[1]
FILES = {"a.bin": b"first file\n" * 100, "sub/b.bin": b"\x00\x01second" * 50}


def _md5(b: bytes) -> str:
    return hashlib.md5(b, usedforsecurity=False).hexdigest()


def _tarball(path: Path, members: dict[str, bytes]) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path.read_bytes()


@pytest.fixture
def source(tmp_path: Path) -> tuple[Archive, bytes]:
    """A tiny dataset archive 'tiny-set' served from a file:// URL, and its bytes."""
    src = tmp_path / "server"
    src.mkdir()
    blob = _tarball(src / "tiny.tar.gz", {f"tiny-set/{k}": v for k, v in FILES.items()})
    archive = Archive(
        name="tiny",
        url=(src / "tiny.tar.gz").as_uri(),
        filename="tiny.tar.gz",
        md5=_md5(blob),
        folder="tiny-set",
        files=tuple((k, _md5(v)) for k, v in FILES.items()) + (("sub", None),),
        size="1 kB",
    )
    return archive, blob


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a URL fails the test; the probe reports no route."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"the network was touched: {args!r}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(net, "unreachable", lambda url, timeout: "cannot reach x:443 (test)")


def _quiet(*_):
    return None


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_fetch_verifies_and_unpacks(source, root):
    archive, blob = source
    lines: list[str] = []
    dest = prefetch.fetch(archive, root, progress=False, log=lines.append)
    assert dest == root / "tiny.tar.gz" and dest.read_bytes() == blob
    folder = prefetch.extract(archive, root, log=lines.append)
    assert folder == root / "tiny-set"
    for name, content in FILES.items():
        assert (folder / name).read_bytes() == content
    assert _leftovers(root) == [], "no temporary file or folder is left behind"
    assert lines == [
        f"tiny: downloading {archive.url} (1 kB)",
        f"tiny: saved {dest}, MD5 verified",
        f"tiny: unpacked {folder}, files verified",
    ]


def test_second_run_writes_nothing_and_needs_no_network(source, root, request):
    archive, _ = source
    prefetch.fetch(archive, root, progress=False, log=_quiet)
    prefetch.extract(archive, root, log=_quiet)
    request.getfixturevalue("no_network")  # from here on, any download attempt fails the test
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in root.rglob("*")}
    lines: list[str] = []
    prefetch.fetch(archive, root, progress=False, log=lines.append)
    prefetch.extract(archive, root, log=lines.append)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in root.rglob("*")}
    assert after == before, "a verified archive and folder are never written again"
    assert lines == [
        f"tiny: {root / 'tiny.tar.gz'} is there, MD5 verified",
        f"tiny: {root / 'tiny-set'} is there, files verified",
    ]


def test_archive_copied_by_hand_is_verified_and_unpacked_offline(source, root, no_network):
    archive, blob = source
    root.mkdir()
    (root / archive.filename).write_bytes(blob)
    prefetch.fetch(archive, root, progress=False, log=_quiet)
    folder = prefetch.extract(archive, root, log=_quiet)
    assert (folder / "a.bin").read_bytes() == FILES["a.bin"]


def test_offline_without_the_archive_fails_at_once_and_says_what_to_do(
    source, root, no_network, monkeypatch
):
    archive, _ = source
    probes = []

    def unreachable(url, timeout):
        probes.append((url, timeout))
        return "cannot reach x:443 (test)"

    monkeypatch.setattr(net, "unreachable", unreachable)
    with pytest.raises(RuntimeError) as err:
        prefetch.fetch(archive, root, timeout=0.25, progress=False, log=_quiet)
    # one bounded probe with the caller's timeout, then no download (no_network would fail it)
    assert probes == [(archive.url, 0.25)]
    message = str(err.value)
    assert "cannot download tiny from file://" in message
    assert "no internet access" in message
    assert archive.md5 in message and str(root / "tiny.tar.gz") in message
    assert not (root / "tiny.tar.gz").exists()


def test_damaged_archive_is_named_and_kept_offline(source, root, no_network):
    archive, _ = source
    root.mkdir()
    (root / archive.filename).write_bytes(b"not the archive")
    with pytest.raises(RuntimeError) as err:
        prefetch.fetch(archive, root, progress=False, log=_quiet)
    message = str(err.value)
    assert f"has MD5 {_md5(b'not the archive')}, expected {archive.md5}" in message
    assert (root / archive.filename).read_bytes() == b"not the archive", "left for a person"


def test_damaged_archive_is_replaced_by_a_verified_download(source, root):
    archive, blob = source
    root.mkdir()
    (root / archive.filename).write_bytes(b"truncated")
    prefetch.fetch(archive, root, progress=False, log=_quiet)
    assert (root / archive.filename).read_bytes() == blob


def test_download_with_the_wrong_hash_keeps_nothing(source, root):
    archive, blob = source
    wrong = Archive(**{**archive.__dict__, "md5": "0" * 32})
    with pytest.raises(RuntimeError) as err:
        prefetch.fetch(wrong, root, progress=False, log=_quiet)
    assert f"has MD5 {_md5(blob)}, expected {'0' * 32}" in str(err.value)
    assert not (root / archive.filename).exists() and _leftovers(root) == []


def test_a_failed_download_keeps_nothing_and_says_how_to_get_the_file(source, root, monkeypatch):
    # The download itself (atomic, hash-checked, bounded by the timeout) is shufflelib.net's,
    # tested in tests/test_net.py; fetch hands it the archive's MD5 and the caller's timeout.
    archive, _ = source
    calls = []

    def stalled(url, dest, *, md5, timeout, progress):
        calls.append((url, dest, md5, timeout, progress))
        raise RuntimeError(f"downloading {url} failed (TimeoutError: timed out); nothing was kept")

    monkeypatch.setattr(net, "download", stalled)
    with pytest.raises(RuntimeError) as err:
        prefetch.fetch(archive, root, timeout=0.5, progress=False, log=_quiet)
    assert calls == [(archive.url, root / archive.filename, archive.md5, 0.5, False)]
    message = str(err.value)
    assert "timed out" in message and archive.md5 in message and "copy it to" in message
    assert not (root / archive.filename).exists() and _leftovers(root) == []


def test_damaged_folder_is_set_aside_and_unpacked_again(source, root):
    archive, blob = source
    root.mkdir()
    (root / archive.filename).write_bytes(blob)
    prefetch.extract(archive, root, log=_quiet)
    (root / "tiny-set" / "a.bin").write_bytes(b"edited")
    lines: list[str] = []
    prefetch.extract(archive, root, log=lines.append)
    assert (root / "tiny-set" / "a.bin").read_bytes() == FILES["a.bin"]
    assert (root / "tiny-set.damaged-1" / "a.bin").read_bytes() == b"edited", "not deleted"
    assert "moved to" in lines[0] and "has MD5" in lines[0]


def test_archive_with_unexpected_content_is_not_put_in_place(source, root, tmp_path):
    archive, _ = source
    root.mkdir()
    blob = _tarball(root / archive.filename, {"tiny-set/a.bin": b"other"})
    other = Archive(**{**archive.__dict__, "md5": _md5(blob)})
    with pytest.raises(RuntimeError, match="did not unpack to the expected files"):
        prefetch.extract(other, root, log=_quiet)
    assert not (root / "tiny-set").exists() and _leftovers(root) == []


def test_archive_escaping_its_folder_is_refused(source, root):
    archive, _ = source
    root.mkdir()
    blob = _tarball(root / archive.filename, {"../escaped.txt": b"x", "tiny-set/a.bin": b"y"})
    evil = Archive(**{**archive.__dict__, "md5": _md5(blob)})
    with pytest.raises(RuntimeError, match="cannot unpack"):
        prefetch.extract(evil, root, log=_quiet)
    assert not (root.parent / "escaped.txt").exists() and _leftovers(root) == []


def test_bad_arguments(source, root, tmp_path):
    archive, _ = source
    with pytest.raises(ValueError, match=r"names must be some of \['cifar10', .*got \['mnist'\]"):
        prefetch.prefetch(root, ["mnist"])
    with pytest.raises(TypeError, match="names must be a collections.abc.Iterable, got 3"):
        prefetch.prefetch(root, 3)
    with pytest.raises(ValueError, match="timeout must be a finite number > 0, got 0"):
        prefetch.fetch(archive, root, timeout=0)
    with pytest.raises(TypeError, match="timeout"):
        prefetch.fetch(archive, root, timeout="10")
    with pytest.raises(TypeError, match="progress must be True or False, got 'no'"):
        prefetch.fetch(archive, root, progress="no")
    with pytest.raises(TypeError, match="root must be a str or os.PathLike path, got 3"):
        prefetch.fetch(archive, 3)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="root must be a folder, but .*file.txt' is a file"):
        prefetch.fetch(archive, a_file)
    with pytest.raises(TypeError, match="archive must be a shufflelib.prefetch.Archive"):
        prefetch.fetch("cifar10", root)


def test_published_hashes_are_torchvision_s():
    from torchvision.datasets import CIFAR10, Imagenette

    cifar = DATASETS["cifar10"]
    assert (cifar.url, cifar.filename, cifar.md5, cifar.folder) == (
        CIFAR10.url,
        CIFAR10.filename,
        CIFAR10.tgz_md5,
        CIFAR10.base_folder,
    )
    listed = [tuple(x) for x in CIFAR10.train_list + CIFAR10.test_list]
    listed.append((CIFAR10.meta["filename"], CIFAR10.meta["md5"]))
    assert sorted(cifar.files) == sorted(listed)
    archives = Imagenette._ARCHIVES
    for name, size in (
        ("imagenette", "full"),
        ("imagenette-320", "320px"),
        ("imagenette-160", "160px"),
    ):
        assert (DATASETS[name].url, DATASETS[name].md5) == archives[size]
        assert DATASETS[name].folder == Path(archives[size][0]).stem


def test_cli_reports_offline_failure_without_a_traceback(root, capsys, no_network):
    code = data.main(["prefetch", "--root", str(root), "--dataset", "cifar10", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("error: cannot download cifar10 from https://www.cs.toronto.edu/")
    assert "Traceback" not in err and "c58f30108f718f92721af3b95e74349a" in err


def test_cli_prefetches_a_registered_dataset(source, root, capsys, monkeypatch):
    archive, _ = source
    monkeypatch.setitem(DATASETS, "tiny", archive)
    assert data.main(["prefetch", "--root", str(root), "--dataset", "tiny", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"tiny: ready in {root / 'tiny-set'}"
    assert (root / "tiny-set" / "sub" / "b.bin").read_bytes() == FILES["sub/b.bin"]


def test_cli_unknown_dataset_is_a_usage_error(root, capsys):
    with pytest.raises(SystemExit) as exit_:
        data.main(["prefetch", "--root", str(root), "--dataset", "mnist"])
    assert exit_.value.code == 2
    assert "invalid choice: 'mnist'" in capsys.readouterr().err


def test_cli_runs_as_a_module_and_documents_its_options():
    result = subprocess.run(
        [sys.executable, "-m", "shufflelib.data", "prefetch", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"},
    )
    assert result.returncode == 0, result.stderr
    for option in ("--root", "--dataset", "--timeout", "imagenette-160"):
        assert option in result.stdout


def test_a_failed_dataset_does_not_stop_the_others_and_all_are_named(source, root, monkeypatch):
    archive, _ = source
    broken = dataclasses.replace(archive, name="broken", filename="broken.tar.gz", md5="0" * 32)
    monkeypatch.setitem(DATASETS, "broken", broken)
    monkeypatch.setitem(DATASETS, "tiny", archive)
    with pytest.raises(net.Unavailable) as failure:
        prefetch.prefetch(root, ["broken", "tiny"], progress=False, log=_quiet)
    message = str(failure.value)
    assert message.startswith("1 of 2 datasets failed: broken: ") and "MD5" in message
    assert message.endswith(f"ready: tiny in {root / 'tiny-set'}")
    assert (root / "tiny-set" / "sub" / "b.bin").read_bytes() == FILES["sub/b.bin"]
