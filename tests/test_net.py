"""shufflelib.net: the one downloader (hash-checked, atomic, bounded) and the reachability probe.

Everything here is offline: files are served from file:// URLs, and the network is a socket on
127.0.0.1 or a stand-in for ``socket.create_connection``.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import urllib.request
from pathlib import Path

import pytest

from shufflelib import net

BLOB = b"some bytes worth keeping\n" * 1000


@pytest.fixture
def served(tmp_path: Path) -> str:
    """A file:// URL serving BLOB."""
    (tmp_path / "server").mkdir()
    source = tmp_path / "server" / "blob.bin"
    source.write_bytes(BLOB)
    return source.as_uri()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "into").mkdir()
    return tmp_path / "into"


@pytest.fixture
def global_timeout_untouched(monkeypatch):
    def refuse(*args):
        raise AssertionError("the process-wide socket timeout must never change")

    monkeypatch.setattr(socket, "setdefaulttimeout", refuse)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("algorithm", ["md5", "sha256", "sha512"])
@pytest.mark.parametrize("length", [None, 8])
def test_download_verifies_each_hash_in_full_or_by_prefix(
    served, folder, algorithm, length, global_timeout_untouched
):
    expected = hashlib.new(algorithm, BLOB).hexdigest()[:length]
    dest = net.download(served, folder / "blob.bin", **{algorithm: expected})
    assert dest == folder / "blob.bin" and dest.read_bytes() == BLOB
    assert _listing(folder) == ["blob.bin"], "no temporary file is left behind"
    assert net.file_digest(dest, algorithm) == hashlib.new(algorithm, BLOB).hexdigest()


def test_a_wrong_hash_keeps_nothing_and_leaves_the_old_file(served, folder):
    (folder / "blob.bin").write_bytes(b"the old file")
    found = hashlib.sha256(BLOB).hexdigest()
    with pytest.raises(RuntimeError) as err:
        net.download(served, folder / "blob.bin", sha256="0" * 64)
    assert f"has SHA-256 {found}, expected {'0' * 64}" in str(err.value)
    assert "nothing was kept" in str(err.value)
    assert (
        _listing(folder) == ["blob.bin"] and (folder / "blob.bin").read_bytes() == b"the old file"
    )
    net.download(served, folder / "blob.bin", sha256=found)  # a verified download replaces it
    assert (folder / "blob.bin").read_bytes() == BLOB


def test_an_interrupted_download_keeps_nothing(folder, monkeypatch):
    class Broken(io.BytesIO):
        headers: dict = {}

        def read(self, n=-1):
            if self.tell() > 100:
                raise ConnectionResetError("connection reset by peer")
            return super().read(64)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    timeouts = []

    def urlopen(url, timeout):
        timeouts.append(timeout)
        return Broken(BLOB)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(RuntimeError, match="ConnectionResetError: connection reset by peer"):
        net.download("https://example.org/blob.bin", folder / "b", md5="0" * 32, timeout=2.5)
    assert timeouts == [2.5], "the timeout goes to urlopen, for the connection and every read"
    assert _listing(folder) == []


def test_a_stalled_download_gives_up_after_the_timeout(
    folder, monkeypatch, global_timeout_untouched
):
    for var in ("http_proxy", "https_proxy", "all_proxy"):  # talk to 127.0.0.1 directly
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/blob.bin"
    try:  # the server accepts and never answers: only the timeout ends the call
        with pytest.raises(RuntimeError, match="timed out"):
            net.download(url, folder / "blob.bin", md5="0" * 32, timeout=0.3)
    finally:
        for conn in accepted:
            conn.close()
        server.close()
    assert _listing(folder) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({}, ValueError, "exactly one of md5=, sha256=, sha512=, got none"),
        ({"md5": "0" * 32, "sha256": "0" * 64}, ValueError, "got ['md5', 'sha256']"),
        ({"md5": 123}, TypeError, "md5 must be a non-empty str, got 123"),
        ({"sha256": "ABCDEF0123"}, ValueError, "lower-case hex"),
        ({"sha256": "0123456"}, ValueError, "at least 8"),
        ({"md5": "0" * 33}, ValueError, "32 in full"),
        ({"md5": "0" * 32, "timeout": 0}, ValueError, "timeout must be a finite number > 0, got 0"),
        ({"md5": "0" * 32, "progress": 1}, TypeError, "progress must be True or False, got 1"),
    ],
)
def test_download_bad_arguments_cost_nothing(served, folder, kwargs, error, words):
    with pytest.raises(error) as err:
        net.download(served, folder / "blob.bin", **kwargs)
    assert words in str(err.value)
    assert _listing(folder) == []


def test_download_needs_an_existing_folder(served, tmp_path):
    with pytest.raises(ValueError, match="dest must be in an existing folder"):
        net.download(served, tmp_path / "nowhere" / "blob.bin", md5="0" * 32)
    with pytest.raises(TypeError, match="dest must be a str or os.PathLike path, got 3"):
        net.download(served, 3, md5="0" * 32)


def test_probe_answers_for_an_open_port_and_names_a_closed_one():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert net.probe("127.0.0.1", port, 5.0) is None
    finally:
        server.close()
    assert net.probe("127.0.0.1", port, 5.0).startswith("ConnectionRefusedError")


def test_probe_is_bounded_even_when_the_lookup_hangs(monkeypatch):
    released, answered = threading.Event(), threading.Event()

    def hang(address, timeout=None, *args, **kwargs):  # DNS or a connection that never returns
        released.wait(30)
        answered.set()
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    try:
        assert net.probe("example.org", 443, 0.2) == "no answer within 0.2 s"
        assert not answered.is_set(), "it gave up while the connection attempt still hung"
    finally:
        released.set()


def test_endpoint_is_the_proxy_when_one_is_set(monkeypatch):
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    assert net.endpoint("https://download.pytorch.org/models/x.pth") == (
        "download.pytorch.org",
        443,
    )
    assert net.endpoint("http://www.cs.toronto.edu/~kriz/c.tar.gz") == ("www.cs.toronto.edu", 80)
    assert net.endpoint("https://example.org:8443/a") == ("example.org", 8443)
    monkeypatch.setenv("https_proxy", "http://proxy.local:3128")
    assert net.endpoint("https://download.pytorch.org/models/x.pth") == ("proxy.local", 3128)
    monkeypatch.setenv("no_proxy", "download.pytorch.org")
    assert net.endpoint("https://download.pytorch.org/models/x.pth") == (
        "download.pytorch.org",
        443,
    )


def test_unreachable_says_why_and_needs_no_network_for_files(monkeypatch):
    def refuse(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert net.unreachable("file:///tmp/x.tar.gz", 1.0) is None
    reason = net.unreachable("https://nowhere.invalid/x", 1.0)
    assert reason.startswith("cannot reach ") and "Name or service not known" in reason
    with pytest.raises(ValueError, match="timeout must be a finite number > 0, got -1"):
        net.unreachable("https://nowhere.invalid/x", -1)


def test_file_digest_is_hashlib_s(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(BLOB)
    for algorithm in net.HASHES:
        assert net.file_digest(path, algorithm) == hashlib.new(algorithm, BLOB).hexdigest()
    with pytest.raises(ValueError, match="algorithm must be one of 'md5', 'sha256', 'sha512'"):
        net.file_digest(path, "sha1")
