"""Sphinx extension: the built book works offline (MathJax and its fonts served from _static).

A class without internet must be able to open the site, so nothing a page loads may come from
another host. Sphinx loads MathJax from a CDN by default; this extension

1. provides MathJax 3 locally: the official ``mathjax`` package from the npm registry, pinned by
   version and by the registry's SHA-512, is downloaded once into ``_build/.offline/`` (kept by
   ``make clean``) with :func:`shufflelib.net.download` (hash-checked, atomic, bounded), and the
   parts the pages use (the ``tex-mml-chtml`` component, its CHTML fonts, the TeX and MathML
   extensions it loads on demand, the menu helpers) are copied into every build as
   ``_static/mathjax/``. Offline, a tarball placed at ``_build/.offline/mathjax-<version>.tgz``
   by hand (``npm pack mathjax@<version>``) is verified and used instead;
2. checks ``mathjax_path`` is that local copy (``_config.yml`` sets it);
3. after the build, scans every HTML page and CSS file for resources loaded from another host
   (scripts, style sheets, fonts, images, frames) and warns about each one, so ``-W`` fails;
4. drops a script that a page would include twice. Sphinx 7 adds an inline script registered after
   the builder started (sphinx-thebe's configuration) once as filename ``None`` and again as
   ``''``, so every page declared ``const THEBE_JS_URL`` twice and threw a SyntaxError in the
   browser (found by tests/test_site.py).

It is wired in ``_config.yml`` under ``sphinx.local_extensions``.
"""

from __future__ import annotations

import base64
import re
import shutil
import tarfile
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.util import logging

from shufflelib import net

logger = logging.getLogger(__name__)

MATHJAX_VERSION = "3.2.2"
MATHJAX_URL = f"https://registry.npmjs.org/mathjax/-/mathjax-{MATHJAX_VERSION}.tgz"
# `npm view mathjax@3.2.2 dist.integrity`: the registry's SHA-512 of the tarball
MATHJAX_SHA512 = (
    "Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
MATHJAX_SHA512_HEX = base64.b64decode(MATHJAX_SHA512).hex()  # the same digest, as net checks it
MATHJAX_PATH = "mathjax/tex-mml-chtml.js"  # relative to _static
# what the pages can load from the package's es5/ folder: the combined component and its lazy parts
KEEP = (
    "tex-mml-chtml.js",
    "input/tex/extensions/",
    "input/mml/extensions/",
    "output/chtml/fonts/woff-v2/",
    "ui/",
)
TIMEOUT = 30.0  # seconds for the connection and for each read of the download


def assets_dir(srcdir: str | Path) -> Path:
    return Path(srcdir) / "_build" / ".offline"


def ensure_mathjax(srcdir: str | Path) -> Path:
    """The folder to add to ``html_static_path``: it holds ``mathjax/tex-mml-chtml.js``."""
    root = assets_dir(srcdir)
    static = root / f"mathjax-{MATHJAX_VERSION}"
    if (static / MATHJAX_PATH).is_file():
        return static
    root.mkdir(parents=True, exist_ok=True)
    tarball = root / f"mathjax-{MATHJAX_VERSION}.tgz"
    help_text = (
        f"The book serves MathJax {MATHJAX_VERSION} itself so that it works offline. On a machine "
        f"with internet, any build downloads it; without internet, run `npm pack "
        f"mathjax@{MATHJAX_VERSION}` (or download {MATHJAX_URL}) elsewhere and copy the file to "
        f"{tarball}."
    )
    if tarball.exists() and net.file_digest(tarball, "sha512") != MATHJAX_SHA512_HEX:
        raise ExtensionError(
            f"{tarball} does not have the npm registry's SHA-512 for mathjax@{MATHJAX_VERSION} "
            f"(sha512-{MATHJAX_SHA512}); delete it and build again. " + help_text
        )
    if not tarball.exists():
        logger.info(f"offline_site: downloading {MATHJAX_URL}")
        reason = net.unreachable(MATHJAX_URL, TIMEOUT)
        if reason is not None:
            raise ExtensionError(
                f"cannot download MathJax from {MATHJAX_URL}: {reason}. " + help_text
            )
        try:
            net.download(MATHJAX_URL, tarball, sha512=MATHJAX_SHA512_HEX, timeout=TIMEOUT)
        except RuntimeError as e:  # HTTP errors, resets, a stalled or damaged download
            raise ExtensionError(f"{e}. " + help_text) from e
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".mathjax.", suffix=".unpacking"))
    try:
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                rel = member.name.removeprefix("package/es5/")
                if rel == member.name or not member.isfile() or not rel.startswith(KEEP):
                    continue
                if ".." in Path(rel).parts:
                    raise ExtensionError(f"{tarball}: refusing the member {member.name!r}")
                target = tmp / "mathjax" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if not (tmp / MATHJAX_PATH).is_file():
            raise ExtensionError(f"{tarball} has no es5/tex-mml-chtml.js")
        if static.exists():
            shutil.rmtree(static)
        tmp.replace(static)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return static


def _config_inited(app: Sphinx, config: Config) -> None:
    if config.mathjax_path != MATHJAX_PATH:
        raise ExtensionError(
            f"mathjax_path is {config.mathjax_path!r}; the offline site needs {MATHJAX_PATH!r} "
            "(set it under sphinx.config in _config.yml)"
        )
    static = ensure_mathjax(app.srcdir)
    config.html_static_path = [*config.html_static_path, str(static)]


# ---------------------------------------------------------------------------------------------
# after the build: nothing may be loaded from another host

_REMOTE = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""", re.IGNORECASE)
_LOADED_RELS = {
    "stylesheet",
    "preload",
    "modulepreload",
    "icon",
    "shortcut",
    "manifest",
    "prefetch",
}


class _Resources(HTMLParser):
    """Collects the URLs a browser fetches when it renders the page (not the links it shows)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and _LOADED_RELS & set(a.get("rel", "").lower().split()):
            self.urls.append(a.get("href", ""))
        if tag == "object" and a.get("data"):
            self.urls.append(a["data"])
        if "style" in a:
            self.urls += [m[0] or m[1] for m in _CSS_URL.findall(a["style"])]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += [m[0] or m[1] for m in _CSS_URL.findall(data)]


def remote_resources(outdir: str | Path) -> dict[str, list[str]]:
    """``{file: [remote URLs]}`` for every HTML page and CSS file under ``outdir``."""
    outdir = Path(outdir)
    found: dict[str, list[str]] = {}
    for page in sorted(outdir.rglob("*.html")):
        if "mathjax" in page.relative_to(outdir).parts:
            continue
        parser = _Resources()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        remote = [u for u in parser.urls if _REMOTE.match(u.strip())]
        if remote:
            found[str(page.relative_to(outdir))] = sorted(set(remote))
    for sheet in sorted(outdir.rglob("*.css")):
        text = re.sub(
            r"/\*.*?\*/", "", sheet.read_text(encoding="utf-8", errors="replace"), flags=re.S
        )
        remote = [m[0] or m[1] for m in _CSS_URL.findall(text)]
        remote = [u for u in remote if _REMOTE.match(u.strip())]
        if remote:
            found[str(sheet.relative_to(outdir))] = sorted(set(remote))
    return found


def _build_finished(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for name, urls in remote_resources(app.outdir).items():
        logger.warning(
            f"{name} loads {len(urls)} resource(s) from another host, so it would not work "
            f"offline: {', '.join(urls[:5])}",
            type="offline_site",
        )


def _script_key(script: object) -> tuple:
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (str(filename), getattr(script, "priority", 500), tuple(sorted(attributes.items())))


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique  # the builder's own list: it restores it after each page


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("config-inited", _config_inited)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("build-finished", _build_finished)
    return {
        "version": MATHJAX_VERSION,
        "env_version": 1,  # bump when a change must rewrite every page of an incremental build
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
