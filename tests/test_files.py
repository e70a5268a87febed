"""files.shared: one value per key, computed once and read by every later process."""

import json
import subprocess
import sys

from shufflelib import files


def test_shared_computes_once_per_key_and_keeps_every_key(tmp_path):
    path, calls = tmp_path / "build" / "kept.json", []  # its folder need not exist yet

    def compute(value):
        return lambda: calls.append(value) or {"value": value}

    assert files.shared(path, "a", compute(1)) == {"value": 1}
    assert files.shared(path, "a", compute(2)) == {"value": 1}  # read, not computed again
    assert files.shared(path, "b", compute(3)) == {"value": 3}  # another key: computed
    assert calls == [1, 3]
    assert json.loads(path.read_text()) == {"a": {"value": 1}, "b": {"value": 3}}
    assert files.shared(None, "a", compute(4)) == {"value": 4}  # no file: always computes
    assert files.shared("", "a", compute(5)) == {"value": 5}  # an empty variable: the same
    assert calls == [1, 3, 4, 5]


def test_a_value_kept_by_one_process_is_read_by_the_next(tmp_path):
    path = tmp_path / "kept.json"
    code = (
        "import sys; from shufflelib import files; "
        "print(files.shared(sys.argv[1], 'k', lambda: sys.argv[2]))"
    )
    run = [sys.executable, "-c", code, str(path)]
    first = subprocess.run([*run, "first"], capture_output=True, text=True, check=True)
    second = subprocess.run([*run, "second"], capture_output=True, text=True, check=True)
    assert first.stdout.strip() == second.stdout.strip() == "first"
    assert not list(tmp_path.glob(f"*{files.TEMPORARY}"))  # written atomically, nothing left
