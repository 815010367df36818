"""Build the whole book from a clean _build, then look at every page in headless Chromium.

Marked ``book`` (slow): ``pytest -m "not book"`` skips it. Screenshots of each
page are written to ``_build/screenshots/`` as CI artefacts.
"""

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from book_pages import BUILD, ROOT, config, toc_files

pytestmark = pytest.mark.book

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# sphinx-thebe writes its <script> twice; the browser reports the redeclaration.
KNOWN_PAGE_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)


@pytest.fixture(scope="session")
def built_book():
    """Run `jupyter-book build -W --keep-going` from an empty _build; fail with its log."""
    shutil.rmtree(BUILD, ignore_errors=True)
    env = dict(os.environ, PLOTLY_RENDERER="notebook")
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run(
        [str(jb), "build", str(ROOT / "book"), "-W", "--keep-going"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    BUILD.mkdir(exist_ok=True)
    (BUILD / "book-build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        pytest.fail(f"book build failed (exit {proc.returncode}); log tail:\n{(proc.stdout + proc.stderr)[-6000:]}")
    return BUILD / "html"


def _executed(page: str):
    path = BUILD / "jupyter_execute" / f"{page}.ipynb"
    return json.loads(path.read_text()) if path.exists() else None


def _count_outputs(nb, predicate) -> int:
    return sum(
        1
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") in ("display_data", "execute_result") and predicate(o["data"])
    )


def _is_plotly(data) -> bool:
    # A figure's HTML holds its div; the renderer's one-off plotly.js loader does not.
    html = "".join(data.get("text/html", ""))
    return "application/vnd.plotly.v1+json" in data or 'class="plotly-graph-div"' in html


def _is_widget(data) -> bool:
    return "application/vnd.jupyter.widget-view+json" in data


def test_every_chapter_executed_without_errors(built_book):
    for page in toc_files():
        assert (built_book / f"{page}.html").exists(), f"page {page} was not built"
        if (ROOT / "book" / f"{page}.ipynb").exists():
            nb = _executed(page)
            assert nb is not None, f"{page}.ipynb was not executed"
            errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
            assert not errors, f"{page}: {errors[0]['ename']}: {errors[0]['evalue']}"
            unexecuted = [c for c in nb["cells"] if c["cell_type"] == "code" and c.get("execution_count") is None]
            assert not unexecuted, f"{page}: {len(unexecuted)} code cells did not run"


@pytest.fixture(scope="session")
def server(built_book):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (make chromium), never `playwright install`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.mark.parametrize("page", toc_files())
def test_page_renders_in_chromium(page, server, browser, built_book):
    shots = BUILD / "screenshots"
    shots.mkdir(exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    # Nothing outside 127.0.0.1 is needed to render a page; block it so the check is offline.
    ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
    pg = ctx.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    resp = pg.goto(f"{server}/{page}.html", wait_until="load")
    assert resp is not None and resp.ok, f"{page}.html did not load"
    pg.wait_for_timeout(500)

    nb = _executed(page) if (ROOT / "book" / f"{page}.ipynb").exists() else None
    want_plots = _count_outputs(nb, _is_plotly) if nb else 0
    want_widgets = _count_outputs(nb, _is_widget) if nb else 0
    if want_plots:
        pg.wait_for_function(
            f"document.querySelectorAll('.plotly-graph-div svg.main-svg').length >= {want_plots}", timeout=30000
        )
    divs = pg.locator(".plotly-graph-div")
    assert divs.count() == want_plots, f"{page}: {want_plots} Plotly figures executed, {divs.count()} in the page"
    for i in range(divs.count()):
        assert divs.nth(i).locator("svg.main-svg").count() > 0, f"{page}: Plotly figure {i} drew no SVG"
    if want_widgets:
        pg.wait_for_selector(".widget-slider", timeout=30000)
    # Each saved widget view is a <script> that html-manager replaces with a rendered view.
    views = pg.evaluate(
        """() => Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'))
                 .map(s => s.parentElement.querySelector('.jupyter-widgets') !== null)"""
    )
    assert len(views) == want_widgets, f"{page}: {want_widgets} widget views executed, {len(views)} saved in the page"
    assert all(views), f"{page}: {views.count(False)} of {len(views)} widget views did not render"
    maths = pg.locator(".math").count()
    if maths:
        pg.wait_for_selector("mjx-container", timeout=30000)
        typeset = pg.locator("mjx-container").count()
        assert typeset >= maths, f"{page}: {maths} equations, {typeset} typeset by MathJax"
    pg.screenshot(path=str(shots / f"{page.replace('/', '_')}.png"), full_page=True)
    ctx.close()
    unexpected = [e for e in errors if not any(k in e for k in KNOWN_PAGE_ERRORS)]
    assert not unexpected, f"{page}: page errors: {unexpected}"


def test_colab_launch_link(built_book):
    url = config()["repository"]["url"].removeprefix("https://github.com/")
    html = (built_book / "01_compression.html").read_text()
    assert f"colab.research.google.com/github/{url}/blob/main/book/01_compression.ipynb" in html
