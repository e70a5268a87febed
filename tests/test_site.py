"""The published site as a reader sees it: built with -W, served on localhost, driven by Chromium.

The build is the teacher's edition (``make book``: exercises with solutions) into ``_build/html``,
from Jupyter Book's execution cache. Under ``make test`` that cache holds the notebooks nbval has
just executed (tests/nbval_cache.py), and these tests run after nbval, so no notebook runs twice;
run alone, the build executes whatever the cache lacks.

Without a browser the build and link checks still run; the browser tests skip and say why, unless
SHUFFLEBOOK_REQUIRE_BROWSER=1 (set by .ci/run), where a missing browser is a failure. The browser is
SHUFFLEBOOK_BROWSER, else the first of chromium, chromium-browser, google-chrome on the PATH,
driven by Playwright's Python package. Screenshots go to _build/screenshots/.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
import yaml
from test_book import NOTEBOOKS, distinctive_lines, exercises_of

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
DOCS = [TOC["root"]] + [ch["file"] for part in TOC["parts"] for ch in part["chapters"]]
SCREENSHOTS = ROOT / "_build" / "screenshots"
sys.path.insert(0, str(ROOT / "_ext"))
import offline_site  # noqa: E402  (the offline check of every build, _ext/offline_site.py)

SEARCH = "channel shuffle"
SEARCH_HIT = "book/02_channel_shuffle.html"
TRAINING_PAGE = "book/09_training"  # screenshot this one once it exists, else the fallback
FALLBACK_PAGE = "book/04_four_guidelines"


# ---------------------------------------------------------------------------------------------
# the build (no browser needed)


@pytest.fixture(scope="module")
def executed_site() -> Path:
    """``_build/html``: the teacher's edition, -W, notebooks from the execution cache.

    Every page is read again (``--all``; fast, nothing executes when the cache is full): an
    incremental build keeps a page whose notebook is unchanged, even when nbval has just put new
    outputs for it in the cache.
    """
    jb = Path(sys.executable).with_name("jupyter-book")
    jb = str(jb) if jb.exists() else shutil.which("jupyter-book")
    assert jb, "jupyter-book is not installed; run `make test`, which installs requirements.txt"
    start = time.perf_counter()
    result = subprocess.run(
        # --all: re-read every page, since Sphinx does not notice new outputs in the cache
        [jb, "build", str(ROOT), "--all", "-W", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=ROOT,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"the book build failed or warned:\n{log[-8000:]}"
    executed = len(re.findall(r"Executing notebook", log))
    print(
        f"\nbook built in {time.perf_counter() - start:.0f} s; notebooks executed by the build: "
        f"{executed}, taken from the cache: {len(re.findall(r'Using cached notebook', log))}"
    )
    html = ROOT / "_build" / "html"
    assert (html / "index.html").exists(), "the build wrote no index.html"
    return html


def test_every_toc_page_is_built(executed_site: Path):
    missing = [doc for doc in DOCS if not (executed_site / f"{doc}.html").exists()]
    assert not missing, f"pages in _toc.yml that were not built: {missing}"


def test_nothing_is_loaded_from_another_host(executed_site: Path):
    assert offline_site.remote_resources(executed_site) == {}
    assert (executed_site / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    fonts = list((executed_site / "_static" / "mathjax").rglob("*.woff"))
    assert len(fonts) >= 20, f"MathJax's CHTML fonts are not all served locally: {fonts}"


def test_offline_check_finds_remote_resources(tmp_path: Path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "page.html").write_text(
        '<html><head><script src="https://cdn.example.org/x.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/f.css">'
        '<link rel="canonical" href="https://example.org/page.html">'
        '<script src="_static/local.js"></script></head>'
        "<body style=\"background: url('https://img.example.org/b.png')\">"
        '<a href="https://colab.research.google.com/x">Colab</a></body></html>'
    )
    (tmp_path / "_static" / "s.css").write_text(
        '/* url(https://commented.example.org/) */ @import "https://css.example.org/a.css";'
    )
    assert offline_site.remote_resources(tmp_path) == {
        "page.html": [
            "//fonts.example.org/f.css",
            "https://cdn.example.org/x.js",
            "https://img.example.org/b.png",
        ],
        "_static/s.css": ["https://css.example.org/a.css"],
    }


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        if tag == "a" and a.get("href") is not None:
            self.hrefs.append(a["href"])


@functools.cache
def _parse(path: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def test_internal_links_and_anchors_resolve(executed_site: Path):
    broken, checked = [], 0
    for page in sorted(executed_site.rglob("*.html")):
        if "_static" in page.relative_to(executed_site).parts:
            continue
        for href in _parse(page).hrefs:
            parts = urlparse(href)
            if parts.scheme or href.startswith(("//", "mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(executed_site)}: {href}"
            checked += 1
            if not target.exists():
                broken.append(f"{where} (no file {target.relative_to(executed_site.resolve())})")
            elif parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in _parse(target).ids:
                    broken.append(f"{where} (no id {parts.fragment!r})")
    assert checked > 500, f"only {checked} internal links found: is the site complete?"
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken[:40])


def test_colab_link_of_each_notebook_points_at_it(executed_site: Path):
    repo = CONFIG["repository"]
    owner_name = repo["url"].removeprefix("https://github.com/").strip("/")
    prefix = repo.get("path_to_book", "") or ""
    for path in NOTEBOOKS:
        doc = f"book/{path.stem}"
        page = (executed_site / f"{doc}.html").read_text()
        links = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page))
        want = (
            f"https://colab.research.google.com/github/{owner_name}/blob/{repo['branch']}/"
            f"{prefix}{doc}.ipynb"
        )
        assert links == {want}, f"{doc}: Colab links {links}, expected {want}"
        assert (ROOT / prefix / f"{doc}.ipynb").exists()


def test_no_figure_is_shown_twice(executed_site: Path):
    """Each output image appears once per page (a cell's `;` must suppress its repr)."""
    for doc in DOCS:
        images = re.findall(
            r'<img[^>]+src="([^"]*_images/[^"]+)"', (executed_site / f"{doc}.html").read_text()
        )
        twice = sorted({i for i in images if images.count(i) > 1})
        assert not twice, f"{doc}: images shown more than once: {twice}"


def test_no_chapter_shows_a_warning_on_stderr(executed_site: Path):
    """A warning printed while a chapter ran (a library's notice, a deprecation) reaches the
    page as a red stderr box: the reader should see only what the chapter prints."""
    for doc in DOCS:
        page = (executed_site / f"{doc}.html").read_text()
        boxes = re.findall(r'<div class="output stderr[ "].*?</pre>', page, flags=re.S)
        assert not boxes, f"{doc}: {re.sub('<[^>]+>', '', boxes[0])[:300]}"


def test_teacher_edition_shows_the_solutions(executed_site: Path):
    found = 0
    for path in NOTEBOOKS:
        page = (executed_site / "book" / f"{path.stem}.html").read_text()
        exercises = exercises_of(path)
        assert page.count('<div class="solution dropdown admonition"') == len(exercises)
        for exercise, solution in exercises:
            for line in distinctive_lines(solution.body, exercise.body):
                assert line in page, f"{path.name}: solution line not in the page: {line!r}"
                found += 1
    assert found >= len(NOTEBOOKS)


# ---------------------------------------------------------------------------------------------
# the browser


def _browser_path() -> str | None:
    named = os.environ.get("SHUFFLEBOOK_BROWSER")
    if named:
        return named if Path(named).exists() else shutil.which(named)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _no_browser(reason: str) -> None:
    message = (
        f"{reason}. Install Debian's chromium (`apt-get install chromium`, which .ci/run does "
        "when it runs as root) or set SHUFFLEBOOK_BROWSER to a Chromium or Chrome binary"
    )
    if os.environ.get("SHUFFLEBOOK_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (SHUFFLEBOOK_REQUIRE_BROWSER=1: the browser tests must run)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("Playwright's Python package is not installed (requirements.txt has it)")
    executable = _browser_path()
    if executable is None:
        _no_browser("no Chromium or Chrome found")
    with sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Exception as e:  # a broken or incompatible browser
            _no_browser(f"{executable} did not start under Playwright ({e})")
        yield chromium
        chromium.close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site_url(executed_site: Path):
    """The built site served on 127.0.0.1 (a free port), for as long as the module runs."""
    handler = functools.partial(_Quiet, directory=str(executed_site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _Visit:
    """One page in a fresh browser context, with everything that went wrong while it loaded."""

    def __init__(self, browser, base: str, width: int = 1280) -> None:
        self.base = base
        self.problems: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"uncaught error: {e}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)

    def _route(self, route) -> None:
        if route.request.url.startswith(self.base) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            self.problems.append(f"request to another host (blocked): {route.request.url}")
            route.abort()

    def _console(self, message) -> None:
        if message.type in ("error", "assert"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _failed(self, request) -> None:
        if request.url.startswith(self.base):
            self.problems.append(f"failed to load {request.url}: {request.failure}")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status} for {response.url}")

    def open(self, path: str) -> None:
        self.page.goto(urljoin(self.base, path), wait_until="load", timeout=60_000)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, site_url):
    visits: list[_Visit] = []

    def make(width: int = 1280) -> _Visit:
        visits.append(_Visit(browser, site_url, width))
        return visits[-1]

    yield make
    for v in visits:
        v.close()


_IMAGES_JS = """async () => {
  const images = Array.from(document.images);
  images.forEach(i => { i.loading = "eager"; });
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  return images.map(i => ({src: i.currentSrc || i.src, w: i.naturalWidth, h: i.naturalHeight}));
}"""

_MATH_JS = """async () => {
  const math = Array.from(document.querySelectorAll(".math"));
  if (math.length === 0) return {math: 0};
  if (!window.MathJax || !MathJax.startup) return {math: math.length, mathjax: false};
  await MathJax.startup.promise;
  return {
    math: math.length,
    mathjax: true,
    typeset: math.filter(m => m.querySelector("mjx-container")).length,
    errors: document.querySelectorAll("mjx-merror").length,
  };
}"""


@pytest.mark.parametrize("doc", DOCS)
def test_page_loads_cleanly_with_images_and_math(doc: str, visit):
    v = visit()
    v.open(f"{doc}.html")
    images = v.page.evaluate(_IMAGES_JS)
    broken = [i["src"] for i in images if not (i["w"] > 0 and i["h"] > 0)]
    math = v.page.evaluate(_MATH_JS)
    v.page.wait_for_timeout(200)  # late console messages
    assert not v.problems, f"{doc}:\n" + "\n".join(v.problems)
    assert not broken, f"{doc}: images that did not load: {broken}"
    if math["math"]:
        assert math["mathjax"], f"{doc}: {math['math']} formulas but MathJax did not load"
        assert math["typeset"] == math["math"] and math["errors"] == 0, f"{doc}: {math}"
    if doc.startswith("book/0") or doc.startswith("book/1"):
        assert images, f"{doc}: a chapter without a single figure"


_FIT_JS = r"""async () => {
  const article = document.querySelector("article.bd-article") || document.body;
  const box = article.getBoundingClientRect(), style = getComputedStyle(article);
  const left = box.left + parseFloat(style.paddingLeft);
  const right = box.right - parseFloat(style.paddingRight);
  const column = {width: right - left, right: right};  // the content box: where text runs
  const images = Array.from(article.querySelectorAll("img"))
    .filter(i => (i.getAttribute("src") || "").toLowerCase().endsWith(".png"));
  images.forEach(i => { i.loading = "eager"; });
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  const wide = Array.from(article.querySelectorAll("table, img"))
    .map(e => ({what: e.tagName.toLowerCase() + " " + (e.querySelector && e.querySelector("caption")
                 ? e.querySelector("caption").textContent : (e.getAttribute("src") || "")),
                width: e.getBoundingClientRect().width, right: e.getBoundingClientRect().right}))
    .filter(e => e.width > column.width + 1 || e.right > column.right + 1);
  // A Markdown table that did not render is a paragraph of "| a | b |" rows or a "|---|" rule.
  const raw = Array.from(article.querySelectorAll("p, li"))
    .filter(e => !e.closest("pre, code, div.cell_output"))
    .map(e => e.textContent.trim())
    .filter(t => (t.startsWith("|") && t.endsWith("|")) || /\|\s*:?-{3,}:?\s*\|/.test(t));
  return {
    column: column.width,
    wide: wide,
    raw: raw.slice(0, 3),
    page: document.documentElement.scrollWidth, viewport: window.innerWidth,
    images: images.map(i => ({src: i.getAttribute("src"), natural: i.naturalWidth,
                              shown: i.getBoundingClientRect().width})),
  };
}"""


def _png_dpi(path: Path) -> float | None:
    """Dots per inch from a PNG's pHYs chunk (matplotlib writes it), or None without one."""
    data = path.read_bytes()
    at = data.find(b"pHYs")
    if at < 0:
        return None
    x = int.from_bytes(data[at + 4 : at + 8], "big")
    unit = data[at + 12]
    return x * 0.0254 if unit == 1 else None


MIN_TEXT_PX = 10  # the smallest figure text (plot.SMALLEST points) as shown, in CSS pixels


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("doc", DOCS)
def test_page_fits_and_its_figures_are_legible(doc: str, width: int, visit, executed_site):
    """At 1280 px no table or figure is wider than the content column; at either width the page
    itself never scrolls sideways, no Markdown table is left unrendered, and every figure's
    smallest text (plot.SMALLEST points) is shown at MIN_TEXT_PX or more."""
    from shufflelib import plot

    v = visit(width)
    v.open(f"{doc}.html")
    fit = v.page.evaluate(_FIT_JS)
    if width == 1280:
        assert not fit["wide"], (
            f"{doc}: wider than the {fit['column']:.0f} px column: {fit['wide']}"
        )
    assert fit["page"] <= fit["viewport"] + 1, f"{doc} at {width} px: the page scrolls sideways"
    assert not fit["raw"], f"{doc}: Markdown table text left unrendered: {fit['raw']}"
    for image in fit["images"]:
        file = (executed_site / doc).parent / unquote(image["src"])
        dpi = _png_dpi(file) if file.suffix == ".png" else None
        assert dpi, f"{doc}: {image['src']} is not a PNG with its resolution (pHYs) recorded"
        smallest = plot.SMALLEST / 72 * dpi * image["shown"] / image["natural"]
        assert smallest >= MIN_TEXT_PX, (
            f"{doc} at {width} px: {image['src']} is drawn {image['natural'] / dpi:.1f} in wide "
            f"and shown at {image['shown']:.0f} px, so its {plot.SMALLEST} pt text is "
            f"{smallest:.1f} px: draw it with shufflelib.plot's style (plot.WIDTH)"
        )


def test_search_finds_channel_shuffle(visit):
    v = visit()
    v.open(f"search.html?q={SEARCH.replace(' ', '+')}")
    v.page.wait_for_selector("#search-results ul.search li", timeout=60_000)
    hits = v.page.eval_on_selector_all(
        "#search-results ul.search li a", "links => links.map(a => a.getAttribute('href'))"
    )
    assert any(h.split("?")[0].split("#")[0].endswith(SEARCH_HIT) for h in hits), hits
    assert not v.problems, "\n".join(v.problems)


def test_screenshots_of_the_first_and_a_training_page(visit):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    training = TRAINING_PAGE if TRAINING_PAGE in DOCS else FALLBACK_PAGE
    shots = {}
    for name, doc in (("first_page", TOC["root"]), ("training_page", training)):
        v = visit()
        v.open(f"{doc}.html")
        v.page.evaluate(_MATH_JS)
        if name == "training_page":  # the first figure, where a reader would look
            v.page.evaluate(_IMAGES_JS)
            first = v.page.query_selector(".cell_output img")
            if first is not None:
                first.scroll_into_view_if_needed()
        shots[name] = SCREENSHOTS / f"{name}.png"
        v.page.screenshot(path=str(shots[name]))
        (SCREENSHOTS / f"{name}.txt").write_text(f"{doc}.html\n")
    for path in shots.values():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, path
    print(f"\nscreenshots: {', '.join(str(p) for p in shots.values())} (training page: {training})")
