"""The built book in a real browser: headless Chromium loads every page of `_build/html` from 127.0.0.1.

Needs the book built (`jupyter-book build . --warningiserror`) and Chromium with its chromedriver (Debian:
`apt-get install chromium chromium-driver`); without them the tests skip, except where LLMFS_REQUIRE_BROWSER=1
(set by .ci/run), where that is a failure. Every page is loaded once; the tests then check what it showed.
"""

import functools
import http.server
import os
import re
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from llmfs import course

SITE = course.REPO_ROOT / "_build" / "html"
REQUIRE_BROWSER = os.environ.get("LLMFS_REQUIRE_BROWSER") == "1"
# Console errors a page may show, each for a stated reason; any other error fails the test.
ALLOWED_CONSOLE_ERRORS = [
    # MathJax is loaded from its CDN, and the test machine has no network: the math is then shown as TeX
    # source (the `math` elements are checked below), as for a reader who is offline.
    re.compile(r"https://cdn\.jsdelivr\.net/npm/mathjax@\S+ - Failed to load resource"),
    # pydata-sphinx-theme logs this on a reader's first visit, before any light/dark choice is stored, and
    # then uses the automatic mode: the first page the fresh browser profile loads shows it.
    re.compile(r"pydata-sphinx-theme\.js\S* \S+ \"Got invalid theme mode: \. Resetting to auto\.\""),
]
COLAB_LINK = re.compile(
    r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/chapters/(?P<name>\w+)\.ipynb"
)
# Figures: a figure saved at `dpi` with text of at least MIN_FONT_PT must show that text at READABLE_PT or more.
# The chapter standard asks for ~9 pt; an 8-inch-wide figure with 10-pt text shows at about 8.8 pt in the column.
MIN_FONT_PT = 10  # matplotlib's default font size, which the chapters' figures keep
READABLE_PT = 8.5

PAGE_SCRIPT = """
const images = [...document.images].map(img => ({
    src: img.currentSrc || img.src, loaded: img.complete && img.naturalWidth > 0,
    natural: img.naturalWidth, shown: img.getBoundingClientRect().width,
    inOutput: img.closest('.cell_output') !== null}));
const shown = element => element.checkVisibility({visibilityProperty: true, opacityProperty: true});
const solutions = [...document.querySelectorAll('.solution.dropdown')].map(
    s => [...s.querySelectorAll('pre')].some(shown));
return {
    title: document.querySelector('h1') ? document.querySelector('h1').innerText : '',
    text: document.body.innerText,
    code: [...document.querySelectorAll('.cell_input pre')].map(pre => pre.textContent).join('\\n'),
    images: images,
    math: document.querySelectorAll('span.math, div.math, mjx-container').length,
    colab: [...document.querySelectorAll('a[href*="colab.research.google.com"]')].map(a => a.href),
    solutionsShown: solutions,
    footer: (document.querySelector('.extra_footer') || {innerText: ''}).innerText,
};
"""


def _skip_or_fail(reason: str):
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (LLMFS_REQUIRE_BROWSER=1: this run must test the site)")
    pytest.skip(reason)


def pages() -> list[str]:
    """The site's HTML pages, as paths relative to the site root (the theme's own files left out)."""
    return sorted(
        path.relative_to(SITE).as_posix()
        for path in SITE.rglob("*.html")
        if not path.relative_to(SITE).parts[0].startswith("_")
    )


def chapter_notebook_pages() -> list[str]:
    return [f"chapters/{path.stem}.html" for path in course.chapter_notebooks()]


@pytest.fixture(scope="module")
def server():
    """Serve the built site on a free port of 127.0.0.1, from a thread."""
    if not (SITE / "index.html").is_file():
        _skip_or_fail(f"no built book in {SITE}: run `jupyter-book build . --warningiserror` first")

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=SITE))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium driven by selenium through the system's chromedriver (never a downloaded one)."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        _skip_or_fail("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip_or_fail("selenium is not installed (it is in the `test` extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(server, browser) -> dict[str, dict]:
    """Load every page once; return what each showed, with its console errors."""
    shown = {}
    for page in pages():
        browser.get(f"{server}/{page}")
        deadline = time.monotonic() + 10
        while browser.execute_script("return document.readyState") != "complete" and time.monotonic() < deadline:
            time.sleep(0.05)
        data = browser.execute_script(PAGE_SCRIPT)
        data["errors"] = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        shown[page] = data
    return shown


def test_every_page_loads_without_console_errors(site):
    unexpected = {
        page: [error for error in data["errors"] if not any(allowed.search(error) for allowed in ALLOWED_CONSOLE_ERRORS)]
        for page, data in site.items()
    }
    assert {page: errors for page, errors in unexpected.items() if errors} == {}
    assert len(site) >= len(chapter_notebook_pages())


def test_every_figure_loads(site):
    broken = {page: [img["src"] for img in data["images"] if not img["loaded"]] for page, data in site.items()}
    assert {page: srcs for page, srcs in broken.items() if srcs} == {}
    for page in chapter_notebook_pages():
        assert any(img["inOutput"] for img in site[page]["images"]), f"{page} shows no figure"


def test_figures_are_readable_at_the_column_width(site):
    """A figure's text (at least MIN_FONT_PT at the figure's size) shows at READABLE_PT or more in the column."""
    from PIL import Image

    too_small = []
    for page in chapter_notebook_pages():
        for img in site[page]["images"]:
            if not img["inOutput"]:
                continue
            local = SITE / re.sub(r"^https?://[^/]+/", "", img["src"])
            dpi = Image.open(local).info.get("dpi", (72, 72))[0]
            # CSS has 96 px per inch: text of f pt drawn at `dpi` shows at f * (dpi / 96) * (shown / natural) pt.
            shown_pt = MIN_FONT_PT * (dpi / 96) * img["shown"] / img["natural"]
            if shown_pt < READABLE_PT:
                width_in = img["natural"] / dpi
                too_small.append(f"{page}: {local.name}, {width_in:.1f} in wide, {MIN_FONT_PT} pt text shows at "
                                 f"{shown_pt:.1f} pt")
    assert too_small == [], "figures too wide for the column (draw them at most ~8 in wide):\n" + "\n".join(too_small)


def test_no_unfilled_glue(site):
    unfilled = re.compile(r"\{glue(:\w+)?\}")
    assert {page: unfilled.findall(data["text"]) for page, data in site.items() if unfilled.search(data["text"])} == {}


def test_code_cells_hide_the_solution_markers_and_colab_titles(site):
    tool_lines = re.compile(r"### (BEGIN|END) SOLUTION|#@title.*")
    found = {page: tool_lines.findall(data["code"]) for page, data in site.items() if tool_lines.search(data["code"])}
    assert found == {}


def test_math_is_rendered_as_math_elements(site):
    for page in chapter_notebook_pages():
        assert site[page]["math"] > 0, f"{page} has no math element"
        assert "$$" not in site[page]["text"], f"{page} shows unparsed $$ math"


def test_colab_launch_links_open_the_page_notebook(site):
    for page in chapter_notebook_pages():
        links = site[page]["colab"]
        assert links, f"{page} has no Colab launch link"
        for link in links:
            match = COLAB_LINK.fullmatch(link)
            assert match, f"{page}: malformed Colab link {link}"
            assert match["name"] == Path(page).stem and (course.CHAPTERS_DIR / f"{match['name']}.ipynb").is_file()


def test_solution_dropdowns_start_closed_and_open_on_click(site, server, browser):
    for page in chapter_notebook_pages():
        shown = site[page]["solutionsShown"]
        assert shown, f"{page} has no solution dropdown"
        assert not any(shown), f"{page}: {shown.count(True)} of {len(shown)} solutions are open on load"
    browser.get(f"{server}/{chapter_notebook_pages()[0]}")
    browser.execute_script("document.querySelector('.solution.dropdown .toggle-button').click()")
    deadline = time.monotonic() + 5
    while not browser.execute_script(
        "return document.querySelector('.solution.dropdown pre').checkVisibility({visibilityProperty: true})"
    ):
        assert time.monotonic() < deadline, "clicking a solution's toggle does not show it"
        time.sleep(0.1)


def test_footer_states_the_licences(site):
    for page, data in site.items():
        assert "CC BY 4.0" in data["footer"] and "MIT" in data["footer"], page


def test_search_finds_a_chapter(server, browser):
    browser.get(f"{server}/search.html?q={quote('attention')}")
    deadline = time.monotonic() + 20
    hrefs = []
    while time.monotonic() < deadline and not hrefs:
        time.sleep(0.2)
        hrefs = browser.execute_script(
            "return [...document.querySelectorAll('#search-results li a')].map(a => a.getAttribute('href'))"
        )
    assert any(href.startswith("chapters/self_attention") for href in hrefs), hrefs
