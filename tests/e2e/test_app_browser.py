"""The standalone app in headless Chromium: upload, restore, see the result; a non-image gives
our message. Runs with UNFOLDLDM_E2E=1 (or once ComfyUI/playwright are set up: the browser
fixture of tests/e2e/conftest.py is shared). Screenshots: tests/e2e/artifacts/app_*.png.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops

pytest.importorskip("gradio")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> test_app

from test_app import app_server, serve_app  # noqa: E402,F401  (the server fixture: nano model, 1 MB uploads)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "astronaut_noisy.png"


@pytest.fixture(scope="module")
def bundled_app(tmp_path_factory):
    """The app as a user starts it, with the bundled restoration weights preselected (the screenshot
    in the README comes from here)."""
    yield from serve_app(tmp_path_factory.mktemp("bundled_app"), "--model", "restore_small")


def _open_app(page, url):
    page.goto(url)
    page.wait_for_selector("#unfoldldm_input input[type=file]", state="attached")
    page.wait_for_selector("#unfoldldm_run")


def test_upload_restore_and_see_result(bundled_app, browser_page, artifacts_dir):
    url, _ = bundled_app
    page = browser_page
    _open_app(page, url)
    page.locator("#unfoldldm_input input[type=file]").set_input_files(str(SAMPLE))
    page.wait_for_selector("#unfoldldm_input img")
    page.click("#unfoldldm_run")
    page.wait_for_selector("#unfoldldm_output img", timeout=180_000)
    page.wait_for_function(
        "() => { const i = document.querySelector('#unfoldldm_output img'); return i && i.complete && i.naturalWidth > 0; }"
    )
    page.screenshot(path=str(artifacts_dir / "app_restored.png"), full_page=True)
    src = page.locator("#unfoldldm_output img").get_attribute("src")
    body = page.request.get(src if src.startswith(("http", "data:")) else url.rstrip("/") + "/" + src.lstrip("/")).body()
    out = Image.open(io.BytesIO(body)).convert("RGB")
    with Image.open(SAMPLE) as sample:
        inp = sample.convert("RGB")
    assert out.size == inp.size
    assert ImageChops.difference(out, inp).getbbox() is not None, "the output equals the input"
    with Image.open(REPO / "samples" / "astronaut_clean.png") as clean:
        reference = np.asarray(clean.convert("RGB"), np.float64)
    psnr = [10 * np.log10(255**2 / np.mean((np.asarray(x, np.float64) - reference) ** 2)) for x in (inp, out)]
    assert psnr[1] > psnr[0] + 8, f"the bundled weights should clean the sample: {psnr[0]:.2f} -> {psnr[1]:.2f} dB"
    assert page.get_by_text(f"Restored {inp.width}x{inp.height} -> {inp.width}x{inp.height}").count() == 1
    # resource-load noise (favicon, an offline machine) is allowed; script errors are not
    assert not [e for e in page.console_errors if e.startswith("pageerror")], page.console_errors
    print("console:", page.console_errors, "http:", page.http_errors)


def test_non_image_upload_shows_message(app_server, browser_page, artifacts_dir, tmp_path):  # noqa: F811  (the imported fixture)
    url, _ = app_server
    page = browser_page
    _open_app(page, url)
    note = tmp_path / "notes.txt"
    note.write_text("this is not a picture")
    page.locator("#unfoldldm_input_file input[type=file]").set_input_files(str(note))
    page.wait_for_timeout(500)
    page.click("#unfoldldm_run")
    message = page.get_by_text("not an image file Pillow can read").first
    message.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)  # let the error toast finish its entrance animation
    page.screenshot(path=str(artifacts_dir / "app_error.png"), full_page=True)
    assert "Traceback" not in page.content()
