"""The web UI in a real browser: Debian's Chromium driven by Playwright against a real
dagster-webserver on 127.0.0.1. A click on "Materialize all" runs the graph; then the lineage
lists the seven assets, the PCA plots load as images and the per-class table shows the classes.
A screenshot is saved next to the test's files when something fails."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fruits_assets import names
from fruits_assets.images import sample_data
from fruits_assets_tests.conftest import run_env, running_webserver

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ASSETS = list(names.ASSETS)
# The closed network refuses Chromium's background connections; these keep it from trying.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
RUNS = "{ runsOrError { ... on Runs { results { runId status } } } }"


@pytest.fixture
def ui(tmp_path, seeded_weights):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs it (apt-get install chromium)")
    images = tmp_path / "images"
    sample_data.generate(images, 40)
    env = run_env(tmp_path, images, seeded_weights)
    subprocess.run(
        [str(Path(sys.executable).with_name("fruits-assets")), "home", "init"], env=env, check=True, capture_output=True
    )
    # Run from the folder that holds the data root: the UI renders the report notebook from there.
    with running_webserver(tmp_path, env, cwd=tmp_path) as client:
        yield f"http://127.0.0.1:{client.port}", client, tmp_path


def dismiss_welcome_dialog(page):
    """A fresh instance greets a new browser with "Join the Dagster community": skip it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("button", name="Skip").click(timeout=10_000)
    except PlaywrightTimeout:
        pass  # not shown (already dismissed in this browser profile)


def wait_for_run(client, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = client._execute(RUNS)["runsOrError"]["results"]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[0]["status"]
        time.sleep(2)
    return "TIMEOUT"


def test_materialize_all_then_lineage_plots_and_tables(ui):
    from playwright.sync_api import sync_playwright

    base, client, tmp = ui
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{base}/asset-groups", wait_until="domcontentloaded")
            for asset in ASSETS:  # the lineage lists every asset
                page.get_by_text(asset, exact=True).first.wait_for(timeout=60_000)
            dismiss_welcome_dialog(page)
            page.get_by_role("button", name="Materialize all").first.click()
            assert wait_for_run(client) == "SUCCESS", (tmp / "webserver.log").read_text()[-4000:]

            for asset in ("pca_model", "image_pca", "feature_probe"):  # plots load as images
                page.goto(f"{base}/assets/{asset}", wait_until="domcontentloaded")
                page.get_by_text("[Show Markdown]").first.click(timeout=60_000)
                image = page.locator('img[src^="data:image/png"]').first
                image.wait_for(timeout=30_000)
                assert image.evaluate("img => img.complete && img.naturalWidth") > 0
                page.keyboard.press("Escape")

            # the report: the executed notebook inline (the lineage's side panel), its figures rendered
            page.goto(f"{base}/asset-groups", wait_until="domcontentloaded")
            page.get_by_text("report", exact=True).first.click(timeout=60_000)
            page.get_by_role("button", name="View Notebook").first.click(timeout=60_000)
            frame = page.frame_locator("iframe").first
            figure = frame.locator('img[src^="data:image/png"]').first
            figure.wait_for(timeout=60_000)
            assert figure.evaluate("img => img.complete && img.naturalWidth") > 0
            assert frame.locator('img[src^="data:image/png"]').count() >= 4
            page.get_by_role("button", name="Close").first.click()

            # tables fit at 1400 px: every column of the image_features preview is on screen
            page.goto(f"{base}/assets/image_features", wait_until="domcontentloaded")
            page.get_by_text("preview", exact=True).first.wait_for(timeout=60_000)
            show = page.get_by_text("[Show Table]")
            if show.count():
                show.first.click()
            for column in ("path", "label", "split", "features"):
                header = page.locator("th", has_text=column).first
                header.wait_for(timeout=30_000)
                box = header.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1400, (column, box)
            assert page.get_by_text("file:/").count() == 0  # paths relative to the image root
            page.keyboard.press("Escape")

            page.goto(f"{base}/assets/raw_images", wait_until="domcontentloaded")
            page.get_by_text("per_class", exact=True).first.wait_for(timeout=60_000)
            table_link = page.get_by_text("[Show Table]")
            if table_link.count():
                table_link.first.click()
            for style in sample_data.CLASSES:  # the per-class table shows the 10 classes
                page.get_by_text(style.label, exact=True).first.wait_for(timeout=30_000)
        except Exception:
            page.screenshot(path=str(tmp / "browser-failure.png"), full_page=True)
            print(f"screenshot: {tmp / 'browser-failure.png'}")
            raise
        finally:
            browser.close()
