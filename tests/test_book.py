"""The book as a whole: notebooks committed clean, set up alike, built as a course, listed.

nbval executes the notebooks themselves (`pytest book --nbval-lax`, run by `make test`), and
tests/test_site.py builds the teacher's edition from those executions. The build here is the
student edition without execution (execute_notebooks: off): it checks the Sphinx side with -W and
that no solution reaches a student.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]
sys.path.insert(0, str(ROOT / "_ext"))
import editions  # noqa: E402  (the book's edition configs, _ext/editions.py)

# The standard first code cell of every chapter (CONTRIBUTING.md shows it).
SETUP_CELL = f"""\
# Setup (the first cell of every chapter): install shufflelib if missing (Colab),
# seed everything, pick the device (CUDA > MPS > CPU), describe this machine.
try:
    import shufflelib
except ImportError:
    %pip install --quiet "shufflelib @ git+{REPO_URL}"
    import shufflelib

device = shufflelib.setup(seed=0)"""

MIN_EXERCISES, MAX_EXERCISES = 3, 6


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _markdown(path: Path) -> str:
    return "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "markdown")


@dataclass
class Block:
    """One ``{exercise}`` or ``{solution}`` directive: its argument, options and body."""

    kind: str
    argument: str
    options: dict[str, str]
    body: str

    def code(self) -> str:
        """The fenced ```python blocks of the body, joined."""
        return "\n".join(re.findall(r"^```python\n(.*?)^```$", self.body, re.M | re.S))


_DIRECTIVE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{(?P<kind>exercise|solution)\}[ \t]*(?P<arg>[^\n]*)\n"
    r"(?P<content>.*?)^(?P=fence)[ \t]*$",
    re.M | re.S,
)


def _blocks(text: str) -> list[Block]:
    blocks = []
    for m in _DIRECTIVE.finditer(text):
        lines = m["content"].split("\n")
        options = {}
        while lines and lines[0].startswith(":"):
            key, _, value = lines.pop(0)[1:].partition(":")
            options[key.strip()] = value.strip()
        blocks.append(Block(m["kind"], m["arg"].strip(), options, "\n".join(lines)))
    return blocks


def exercises_of(path: Path) -> list[tuple[Block, Block | None]]:
    """Each exercise of a notebook with its solution (None if it has none)."""
    blocks = _blocks(_markdown(path))
    solutions = {b.argument: b for b in blocks if b.kind == "solution"}
    return [(b, solutions.get(b.options.get("label", ""))) for b in blocks if b.kind == "exercise"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8, f"expected the chapters in {BOOK}, found {NOTEBOOKS}"


def test_directive_parser_finds_what_it_should():
    text = (
        "````{exercise}\n:label: ex-a\n\nDo it.\n\n```python\nx = 1\n```\n````\n\n"
        "````{solution} ex-a\n:class: dropdown\n\n```python\nx = 2\n```\n````\n"
        "```{exercise}\n:label: ex-b\n\nNo code.\n```\n"
    )
    blocks = _blocks(text)
    assert [(b.kind, b.argument, b.options) for b in blocks] == [
        ("exercise", "", {"label": "ex-a"}),
        ("solution", "ex-a", {"class": "dropdown"}),
        ("exercise", "", {"label": "ex-b"}),
    ]
    assert blocks[0].code() == "x = 1\n" and blocks[1].code() == "x = 2\n"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path: Path):
    dirty = [
        i
        for i, c in enumerate(_cells(path))
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; the build executes notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_standard_setup(path: Path):
    code = [c for c in _cells(path) if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cell"
    assert _source(code[0]) == SETUP_CELL, (
        f"{path.name}: the first code cell must be the standard setup cell (see CONTRIBUTING.md), "
        f"installing from the repository in _config.yml ({REPO_URL})"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_opens_with_title_objectives_and_prerequisites(path: Path):
    cells = _cells(path)
    first = _source(cells[0])
    assert cells[0]["cell_type"] == "markdown" and first.startswith("# "), (
        f"{path.name}: the first cell must be markdown starting with '# Title'"
    )
    assert "**You will learn to**" in first, f"{path.name}: no '**You will learn to**' list"
    objectives = re.findall(r"^- \S", first.split("**You will learn to**", 1)[1], re.M)
    assert len(objectives) >= 3, f"{path.name}: {len(objectives)} learning objectives, want 3+"
    assert re.search(r"^\*\*Prerequisites\*\*: \S", first, re.M), (
        f"{path.name}: the first cell must state '**Prerequisites**: ...'"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_closes_with_summary_then_exercises(path: Path):
    text = _markdown(path)
    assert "\n## Summary\n" in text, f"{path.name}: no '## Summary' section"
    assert "\n## Exercises\n" in text, f"{path.name}: no '## Exercises' section"
    assert text.index("\n## Summary\n") < text.index("\n## Exercises\n")
    tail = text.split("\n## Exercises\n", 1)[1]
    code = re.compile(r"^```\w+\n.*?^```$", re.M | re.S)
    tail = code.sub("", tail)  # a comment in a code block is no heading
    assert not re.search(r"^#{1,2} ", tail, re.M), f"{path.name}: the exercises must come last"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_are_a_course_mix_with_solutions(path: Path):
    exercises = exercises_of(path)
    assert MIN_EXERCISES <= len(exercises) <= MAX_EXERCISES, (
        f"{path.name}: {len(exercises)} exercises, want {MIN_EXERCISES} to {MAX_EXERCISES}"
    )
    labels = [e.options.get("label") for e, _ in exercises]
    assert all(labels) and len(set(labels)) == len(labels), f"{path.name}: labels {labels}"
    for exercise, solution in exercises:
        label = exercise.options["label"]
        assert solution is not None, f"{path.name}: exercise {label} has no solution"
        assert solution.options.get("class") == "dropdown", f"{label}: solution not a dropdown"
    coding = [e for e, _ in exercises if "check." in e.code()]
    assert coding, (
        f"{path.name}: no coding exercise; give one a ```python stub ending in a "
        "shufflelib.check call (see chapter 1's ex-gconv-by-hand)"
    )
    measured = [e for e, _ in exercises if re.search(r"\bmeasur|\btime\b|\btiming", e.body, re.I)]
    assert measured, f"{path.name}: no measurement exercise (predict, then measure)"


CODING = [
    pytest.param(path, exercise, solution, id=f"{path.stem[:2]}-{exercise.options['label']}")
    for path in NOTEBOOKS
    for exercise, solution in exercises_of(path)
    if "check." in exercise.code() and solution is not None
]


@pytest.mark.parametrize(("path", "exercise", "solution"), CODING)
def test_coding_exercise_stub_fails_and_solution_passes(path, exercise, solution, one_thread):
    """The stub as given does not pass its check; the solution's code passes every check."""
    stub, answer = exercise.code(), solution.code()
    assert "check." in answer, "the solution must end with the same check call"
    with contextlib.redirect_stdout(io.StringIO()) as out, pytest.raises(Exception) as err:
        exec(compile(stub, f"{path.name}:{exercise.options['label']}", "exec"), {})
    assert isinstance(err.value, AssertionError | NotImplementedError | TypeError), (
        f"the stub fails with an unexpected {err.type.__name__}: {err.value}"
    )
    assert "PASS" not in out.getvalue()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(answer, f"{path.name}:{exercise.options['label']} (solution)", "exec"), {})
    lines = out.getvalue().splitlines()
    passes = [line for line in lines if line.startswith("PASS: ")]
    assert passes and len(passes) >= answer.count("check."), "\n".join(lines)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_work_in_colab(path: Path):
    """Figures come from code as PNG outputs: no image files referenced by path, no SVG."""
    text = _markdown(path)
    images = re.findall(
        r"!\[[^\]]*\]\(([^)]+)\)|<img[^>]+src=\"([^\"]+)\"|\{(?:image|figure)\}", text
    )
    assert not images, f"{path.name}: markdown references image files {images}"
    for cell in _cells(path):
        assert "set_matplotlib_formats" not in _source(cell), f"{path.name}: keep PNG figures"


def test_toc_lists_every_notebook_and_only_existing_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [ch["file"] for ch in part["chapters"]]
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f"{f} not found"
    listed = {f for f in files if (ROOT / f"{f}.ipynb").exists()}
    on_disk = {str(p.relative_to(ROOT).with_suffix("")) for p in NOTEBOOKS}
    assert on_disk == listed, f"notebooks not in _toc.yml: {sorted(on_disk - listed)}"
    assert "book/teaching" in files, "the course plan book/teaching.md is not in _toc.yml"


def test_the_course_plan_gives_every_chapter_a_session_and_a_summary():
    plan = (ROOT / "book" / "teaching.md").read_text()
    sessions = [line for line in plan.splitlines() if re.match(r"\| \d+ \|", line)]
    for path in NOTEBOOKS:
        doc = f"{{doc}}`{path.stem}`"
        assert sum(doc in line for line in sessions) == 1, f"{path.stem}: in no session, or two"
        assert f"\n{doc}\n: " in plan, f"{path.stem}: not under 'What each chapter teaches'"
    words = {6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    assert f"## A course in {words[len(sessions)]} sessions" in plan


def test_config_has_what_readers_need():
    assert REPO_URL.startswith("https://github.com/")
    assert CONFIG["execute"]["execute_notebooks"] == "cache"
    assert CONFIG["execute"]["allow_errors"] is False
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["launch_buttons"]["binderhub_url"]
    extensions = CONFIG["sphinx"]["extra_extensions"]
    assert "sphinx_exercise" in extensions and "sphinx_togglebutton" in extensions
    sphinx = CONFIG["sphinx"]["config"]
    assert sphinx["hide_solutions"] is False, "the reader's site (make book) shows the solutions"
    assert sphinx["mathjax_path"] == "mathjax/tex-mml-chtml.js", "MathJax from _static, no CDN"
    assert CONFIG["sphinx"]["local_extensions"] == {"offline_site": "_ext/"}
    bib = (ROOT / CONFIG["bibtex_bibfiles"][0]).read_text()
    for key in ("zhang2018shufflenet", "ma2018shufflenetv2", "sandler2018mobilenetv2"):
        assert f"{{{key}," in bib
    assert "tan2021efficientnetv2" in bib


def test_edition_configs_differ_only_where_they_should(tmp_path: Path):
    teacher, student = editions.config("teacher"), editions.config("student", execute="off")
    assert teacher["sphinx"]["config"]["hide_solutions"] is False
    assert student["sphinx"]["config"]["hide_solutions"] is True
    assert student["execute"]["execute_notebooks"] == "off"
    assert student["title"].endswith("(student edition)")
    ext = Path(student["sphinx"]["local_extensions"]["offline_site"])
    assert ext.is_absolute() and (ext / "offline_site.py").exists()
    assert Path(student["execute"]["cache"]) == ROOT / "_build" / ".jupyter_cache"
    with pytest.raises(ValueError, match="edition must be one of .* got 'reader'"):
        editions.config("reader")
    with pytest.raises(ValueError, match="execute must be one of"):
        editions.config("student", execute="sometimes")


def test_every_citation_is_in_the_bibliography():
    bib = (ROOT / CONFIG["bibtex_bibfiles"][0]).read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    sources = [p.read_text() for p in BOOK.glob("*.md")] + [
        _source(c) for p in NOTEBOOKS for c in _cells(p) if c["cell_type"] == "markdown"
    ]
    cited = {
        k.strip()
        for s in sources
        for m in re.findall(r"\{cite\}`([^`]+)`", s)
        for k in m.split(",")
    }
    assert cited, "the book cites nothing"
    assert cited <= keys, f"cited but missing from references.bib: {sorted(cited - keys)}"


def _jupyter_book() -> str:
    jb = Path(sys.executable).with_name("jupyter-book")
    found = str(jb) if jb.exists() else shutil.which("jupyter-book")
    assert found, "jupyter-book is not installed; run `make test`, which installs requirements.txt"
    return found


def test_student_edition_builds_without_warnings_or_solutions(tmp_path: Path):
    """The student edition with -W, notebooks not executed: exercises in, solutions out."""
    config_path = tmp_path / "_config.yml"
    config_path.write_text(yaml.safe_dump(editions.config("student", ROOT, execute="off")))
    out = tmp_path / "out"
    result = subprocess.run(
        [_jupyter_book(), "build", str(ROOT), "--config", str(config_path)]
        + ["--path-output", str(out), "-W", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"the student edition failed or warned:\n{log[-6000:]}"
    html = out / "_build" / "html"
    for page in ["book/intro.html"] + [f"book/{p.stem}.html" for p in NOTEBOOKS]:
        assert (html / page).exists(), f"{page} was not built"
    assert "(student edition)" in (html / "book" / "intro.html").read_text()
    checked = 0
    for path in NOTEBOOKS:
        page = (html / "book" / f"{path.stem}.html").read_text()
        exercises = exercises_of(path)
        assert page.count('<div class="exercise admonition"') == len(exercises), path.name
        assert '<div class="solution' not in page, f"{path.name}: a solution is in the page"
        for exercise, solution in exercises:
            assert f'id="{exercise.options["label"]}"' in page
            for line in distinctive_lines(solution.body, exercise.body):
                checked += 1
                assert line not in page, (
                    f"{path.name}: solution text of {exercise.options['label']} is in the "
                    f"student edition: {line!r}"
                )
    assert checked >= len(NOTEBOOKS), f"only {checked} solution lines were looked for"
    colab = (
        f"https://colab.research.google.com/github/{REPO_URL.removeprefix('https://github.com/')}"
    )
    assert colab in (html / "book" / f"{NOTEBOOKS[0].stem}.html").read_text()


def distinctive_lines(solution: str, exercise: str) -> list[str]:
    """Up to 3 plain lines of a solution's prose, as they appear in HTML, not in its exercise.

    Lines with math, markup, code, quotes or dots are left out: the HTML changes those.
    tests/test_site.py finds the same lines in the teacher's edition.
    """
    prose = solution.split("```")[0]  # the text before any fenced code
    plain = [
        line.strip()
        for line in prose.splitlines()
        if len(line.strip()) > 30
        and not line.startswith("    ")  # an indented code block
        and not re.search(r"[$`*\\{}<>&\"'_]|\.\.|--", line)
    ]
    return [line for line in plain if line not in exercise][:3]
