"""pytest plugin: nbval's run of each notebook feeds the book build, so `make test` runs it once.

`make test` runs ``pytest tests book --nbval-lax -p tests.nbval_cache``. nbval executes every
notebook cell by cell in a fresh kernel and fails on any error; this plugin then

1. keeps the outputs nbval received for each cell and, when every cell of a notebook passed,
   stores the executed notebook in Jupyter Book's execution cache (``_build/.jupyter_cache``,
   the one ``make book`` uses; entries are keyed by the notebook's code, as Jupyter Book does);
2. moves the tests that need the executed book (those using the ``executed_site`` fixture of
   ``tests/test_site.py``) after the notebook cells, so their build finds every notebook in the
   cache and executes none of them again.

The cached outputs are what Jupyter Book's own execution (nbclient) would have stored:

- nbval sends ``store_history=False``, and IPython then ignores a cell's trailing ``;`` (it looks
  for it in the history), so every figure cell ending in ``;`` showed its figure twice in the
  book; here nbval executes cells with ``store_history=True``, as Jupyter does;
- nbval merges all of a cell's stdout (and all its stderr) into one output placed before any
  figure; the cache gets the outputs in the order the kernel sent them, as nbclient keeps them,
  with only *consecutive* pieces of one stream joined (how many pieces the kernel sends depends
  on timing, and each piece would be a box of its own on the page);
- nbval ignores ``clear_output`` and ``update_display_data`` messages, so a notebook whose code
  uses them is not cached, and the book build executes it itself.

Without this plugin (a plain ``pytest tests``) the same tests still work: the build executes the
notebooks that are not in the cache itself.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
LATE_FIXTURE = "executed_site"


UNFAITHFUL = ("clear_output", "display_id", "update_display")  # messages nbval drops
_raw: dict[int, list] = {}  # id(nbval's output list) -> the outputs before nbval merged them


def pytest_configure(config: pytest.Config) -> None:
    try:
        import nbval.plugin
        from nbval.kernel import RunningKernel
    except ImportError:  # nbval not installed: nothing to feed
        return

    def execute_cell_input(self, cell_input, allow_stdin=None):
        return self.kc.execute(
            cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False
        )

    merge = nbval.plugin.coalesce_streams

    def coalesce_streams(outputs):
        _raw[id(outputs)] = copy.deepcopy(list(outputs or []))
        return merge(outputs)

    RunningKernel.execute_cell_input = execute_cell_input
    nbval.plugin.coalesce_streams = coalesce_streams


def _is_cell(item: pytest.Item) -> bool:
    return type(item).__name__ == "IPyNbCell" and hasattr(item, "test_outputs")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    late = [i for i in items if LATE_FIXTURE in getattr(i, "fixturenames", ())]
    if late and any(_is_cell(i) for i in items):
        early = [i for i in items if LATE_FIXTURE not in getattr(i, "fixturenames", ())]
        items[:] = early + late


class _Notebook:
    def __init__(self) -> None:
        self.passed = True
        self.seconds = 0.0
        self.cells: list[pytest.Item] = []


_runs: dict[Path, _Notebook] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if not _is_cell(item):
        return
    report = outcome.get_result()
    run = _runs.setdefault(Path(item.parent.path), _Notebook())
    run.seconds += report.duration
    if report.when == "call":
        run.cells.append(item)
    if report.failed or report.skipped:
        run.passed = False


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if not _is_cell(item) or (nextitem is not None and nextitem.parent is item.parent):
        return
    path = Path(item.parent.path)
    run = _runs.pop(path, None)
    if run is None or not run.passed:
        return
    nb = copy.deepcopy(item.parent.nb)  # the notebook as nbval read it, outputs empty
    code = [c for c in nb.cells if c.cell_type == "code"]
    raw = [_raw.pop(id(executed.test_outputs), None) for executed in run.cells]
    if len(run.cells) != len(code) or any(r is None for r in raw):
        return
    if any(word in c.source for c in code for word in UNFAITHFUL):
        return
    for count, (cell, outputs) in enumerate(zip(code, raw), start=1):
        cell.outputs = _join_consecutive_streams(outputs)
        cell.execution_count = count
        for output in cell.outputs:
            if output.get("output_type") == "execute_result":
                output["execution_count"] = count
    _store(nb, path, run.seconds)


def _join_consecutive_streams(outputs: list) -> list:
    joined: list = []
    for out in outputs:
        last = joined[-1] if joined else None
        if (
            out.get("output_type") == "stream"
            and last is not None
            and last.get("output_type") == "stream"
            and last.get("name") == out.get("name")
        ):
            last["text"] += out["text"]
        else:
            joined.append(out)
    return joined


def _store(nb, path: Path, seconds: float) -> None:
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(CACHE))
    cache.cache_notebook_bundle(
        CacheBundleIn(nb, str(path), data={"execution_seconds": seconds, "executed_by": "nbval"}),
        check_validity=False,
        overwrite=True,
    )
