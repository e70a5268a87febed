"""The house rules of shufflelib that a linter does not check (import-linter checks the layers).

- No private name (leading underscore) is imported from another module: what two modules share
  is public in the lower one.
- No function is longer than a screen (60 lines of code, docstring excluded).
"""

import ast
from pathlib import Path

import shufflelib

PACKAGE = Path(shufflelib.__file__).parent
SCREEN = 60

# Training code (hashed into the results store) that still breaks a rule; each entry goes with
# the train/ package (issue #12, second slice). The tests fail when an entry is no longer needed.
TRAINING_DEBT_IMPORTS: set[tuple[str, str]] = set()
TRAINING_DEBT_LENGTH: set[tuple[str, str]] = set()


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text())


def test_no_private_name_crosses_a_module():
    found = set()
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                found |= {(rel, a.name) for a in node.names if a.name.startswith("_")}
    assert found - TRAINING_DEBT_IMPORTS == set(), "import a public name, or make it public"
    assert TRAINING_DEBT_IMPORTS <= found, "a debt was paid: remove it from the list"


def _code_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = fn.body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(
        getattr(first, "value", None), ast.Constant
    )
    start = first.end_lineno + 1 if docstring and len(fn.body) > 1 else first.lineno
    return fn.end_lineno - start + 1


def test_no_function_is_longer_than_a_screen():
    long = set()
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if _code_lines(node) > SCREEN:
                    long.add((rel, node.name))
    assert long - TRAINING_DEBT_LENGTH == set(), f"split these into named steps: {long}"
    assert TRAINING_DEBT_LENGTH <= long, "a debt was paid: remove it from the list"
