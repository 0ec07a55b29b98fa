"""The Snakemake report as a reader meets it: headless Chromium (Debian's chromium and
chromedriver, driven by Selenium) opens every result entry through the report's own menu.

Uses the report of the reduced demo run that tests/test_workflow.py builds
(results/demo_ci/report.html), or the one MICROCLIP_REPORT names (e.g. results/demo/report.html
after `make demo`); skipped with the reason when it or chromium is absent. `.ci/run` runs this
after `make test`, with chromium installed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REPORT = Path(os.environ.get("MICROCLIP_REPORT", REPO / "results" / "demo_ci" / "report.html"))
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
# A laptop screen, and a short window: with the template's own CSS a figure taller than the
# pane loses its top (workflow/report/stylesheet.css, passed by --report-stylesheet, fixes it).
WINDOWS = {"laptop": (1280, 800), "short": (1280, 540)}
# Started as the machine's notes require: no sandbox (root in a container), no GPU, and no
# network of its own (updates, sync, QUIC), with a fresh profile folder each run.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = os.environ.get("MICROCLIP_REPORT_SHOTS")  # a folder: one screenshot per entry

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module", params=sorted(WINDOWS))
def browser(request, tmp_path_factory):
    window = WINDOWS[request.param]
    if not REPORT.is_file():
        pytest.skip(f"no report at {REPORT}: tests/test_workflow.py's end-to-end demo test "
                    "builds it (or set MICROCLIP_REPORT)")
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver; .ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with both paths given, Selenium Manager stays idle
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
                 f"--window-size={window[0]},{window[1]}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    driver.microclip_window = window
    yield driver
    driver.quit()


def _errors(driver) -> list[str]:
    """JavaScript errors (uncaught exceptions, console.error) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _open_report(driver) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(REPORT.resolve().as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.querySelector('#app nav, #app ul') !== null")
    )


def _click_menu(driver, label: str) -> None:
    """Click the navbar entry whose text is `label` (a category or a subcategory)."""
    from selenium.webdriver.common.by import By

    links = [a for a in driver.find_elements(By.CSS_SELECTOR, "#app a")
             if a.text.strip() == label and a.is_displayed()]
    assert links, f"no menu entry {label!r} in the report's navbar"
    links[0].click()


def _result_rows(driver):
    """The rows of the results table in the navbar: (labels, view button)."""
    from selenium.webdriver.common.by import By

    rows = []
    for row in driver.find_elements(By.CSS_SELECTOR, "#app table tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        buttons = cells[-1].find_elements(By.CSS_SELECTOR, "a") if cells else []
        if buttons:
            rows.append(([c.text for c in cells[:-1]], buttons[0]))
    return rows


def _shown(driver) -> dict:
    """What the content pane shows: an <img> (its geometry) or an <iframe>."""
    return driver.execute_script(
        """
        const pane = document.querySelector('#app > div > div:last-child') ||
                     document.querySelector('#app div.grow');
        const img = pane && pane.querySelector('img');
        const frame = pane && pane.querySelector('iframe');
        const box = el => { const r = el.getBoundingClientRect();
                            return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
        return {
          pane: pane ? box(pane) : null,
          img: img ? {complete: img.complete, naturalWidth: img.naturalWidth,
                      naturalHeight: img.naturalHeight, src: img.src.slice(0, 40), ...box(img)}
                   : null,
          frame: frame ? {src: frame.src.slice(0, 40)} : null,
          viewport: {width: window.innerWidth, height: window.innerHeight},
        };
        """
    )


def _number_cells(driver) -> dict:
    """The shown HTML page's table cells that hold a number: how many, how many 'mean ± std',
    and those whose text spans more than one line (a wrapped '45.13 ± 0.00')."""
    return driver.execute_script(
        """
        const out = {numbers: 0, mean_std: 0, wrapped: []};
        for (const cell of document.querySelectorAll('td, th')) {
          const text = cell.textContent.trim();
          if (!/\\d/.test(text)) continue;
          out.numbers += 1;
          if (/\\d\\.\\d+\\s*±\\s*\\d/.test(text)) out.mean_std += 1;
          const range = document.createRange();
          range.selectNodeContents(cell);
          const tops = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
          if (tops.size > 1) out.wrapped.push(text);
        }
        return out;
        """
    )


def test_every_result_entry_opens_without_errors(browser):
    """Through the menu, as a reader: every category, subcategory and entry; images load,
    HTML tables render, no JavaScript error; no figure loses its top to the pane's vertical
    centring, the saliency figure is shown whole, and no cell with a number wraps (a
    '45.13 ± 0.00' stays on one line; with one seed the cells hold the mean only)."""
    from selenium.webdriver.support.ui import WebDriverWait

    _open_report(browser)
    assert _errors(browser) == [], "JavaScript errors on load"
    categories = browser.execute_script(
        "return Object.fromEntries(Object.entries(categories)"
        ".map(([c, subs]) => [c, Object.keys(subs)]));"
    )
    n_results = browser.execute_script("return Object.keys(results).length;")
    assert categories and n_results > 0

    opened, problems, saliency, tables_with_numbers, mean_std_cells = 0, [], [], 0, 0
    for category in sorted(categories):
        for subcategory in sorted(categories[category]):
            _open_report(browser)  # from the top each time, as a reader following the menu
            _click_menu(browser, category)
            if len(categories[category]) > 1:
                _click_menu(browser, subcategory)
            rows = _result_rows(browser)
            assert rows, f"no entries listed under {category} / {subcategory}"
            for index in range(len(rows)):
                labels, button = _result_rows(browser)[index]  # re-found: React re-renders
                where = f"{category} / {subcategory} / {' '.join(labels)}"
                button.click()
                WebDriverWait(browser, 30).until(
                    lambda d: (s := _shown(d))["frame"] is not None
                    or (s["img"] is not None and s["img"]["complete"])
                )
                shown = _shown(browser)
                opened += 1
                if SHOTS:
                    Path(SHOTS).mkdir(parents=True, exist_ok=True)
                    browser.save_screenshot(f"{SHOTS}/{opened:02d}_{'_'.join(filter(None, labels))}.png")
                if shown["img"] is not None:
                    img = shown["img"]
                    if img["naturalWidth"] == 0:
                        problems.append(f"{where}: image did not load")
                    if img["top"] < 0:  # centred in the pane and taller than it: top unreachable
                        problems.append(f"{where}: top {-img['top']:.0f} px cut off "
                                        f"(window {browser.microclip_window[0]}x"
                                        f"{browser.microclip_window[1]})")
                    if "saliency" in " ".join(labels):
                        saliency.append((where, shown))
                else:
                    browser.switch_to.frame(browser.find_element("css selector", "#app iframe"))
                    WebDriverWait(browser, 30).until(
                        lambda d: d.execute_script("return document.readyState") == "complete"
                    )
                    body = browser.execute_script("return document.body.innerText.trim();")
                    if not body:
                        problems.append(f"{where}: the HTML page is empty")
                    cells = _number_cells(browser)
                    tables_with_numbers += cells["numbers"] > 0
                    mean_std_cells += cells["mean_std"]
                    problems += [f"{where}: cell wraps: {t!r}" for t in cells["wrapped"]]
                    broken = browser.execute_script(
                        "return Array.from(document.images).filter(i => i.complete && "
                        "i.naturalWidth === 0).map(i => i.src.slice(0, 60));"
                    )
                    problems += [f"{where}: image in page did not load: {s}" for s in broken]
                    browser.switch_to.default_content()
                problems += [f"{where}: JavaScript error: {e}" for e in _errors(browser)]

    assert problems == []
    assert opened == n_results, f"opened {opened} entries through the menu of {n_results}"
    assert tables_with_numbers > 0, "no table with numbers was shown"
    print(f"{opened} entries opened, {tables_with_numbers} tables with numbers "
          f"({mean_std_cells} 'mean ± std' cells)")
    assert saliency, "no saliency figure among the entries"
    for where, shown in saliency:
        img, viewport = shown["img"], shown["viewport"]
        # Whole: its top is not pushed above the pane by the template's vertical centring
        # (that part could not be scrolled to), and it fits the window.
        assert img["top"] >= 0, f"{where}: top cut off ({img['top']:.0f} px above the window)"
        assert img["left"] >= 0 and img["right"] <= viewport["width"], (where, img, viewport)
        assert img["bottom"] <= viewport["height"], (where, img, viewport)
