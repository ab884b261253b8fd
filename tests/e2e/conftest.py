"""Fixtures for the end-to-end tests against a real ComfyUI (see tests/comfy_harness.py).

The tests skip unless ComfyUI is set up (``bash scripts_dev/setup_comfyui.sh``) or
UNFOLDLDM_E2E=1, which runs that setup first when needed (what CI does: the first setup
downloads/installs about 6 GB and takes minutes).

    comfy         session-scoped ComfyServer (this repo loaded as custom_nodes/unfoldldm)
    browser_page  a Playwright page in headless Debian chromium; ``browser_page.console_errors``
                  collects console errors and uncaught page errors, ``browser_page.http_errors``
                  the responses with status >= 400 ("404 http://...")
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> comfy_harness

from comfy_harness import CHROMIUM, COMFY_DIR, ComfyServer, comfy_is_set_up, run_setup

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _e2e_forced() -> bool:
    return os.environ.get("UNFOLDLDM_E2E") == "1"


@pytest.fixture(scope="session")
def comfy_dir() -> Path:
    if not comfy_is_set_up(COMFY_DIR):
        if not _e2e_forced():
            pytest.skip(
                f"ComfyUI is not set up in {COMFY_DIR}: run `bash scripts_dev/setup_comfyui.sh` "
                "or set UNFOLDLDM_E2E=1 (sets it up, ~6 GB)"
            )
        run_setup(COMFY_DIR)
    return COMFY_DIR


@pytest.fixture(scope="session")
def comfy(comfy_dir):
    """One real ComfyUI server for the whole session (stopped at the end, whatever happens)."""
    with ComfyServer(comfy_dir) as server:
        yield server


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _import_playwright(comfy_dir: Path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        # setup_comfyui.sh installs playwright with `pip --target DIR/pylib` (same python).
        sys.path.append(str(comfy_dir / "pylib"))
        from playwright.sync_api import sync_playwright
    return sync_playwright


@pytest.fixture(scope="session")
def _browser(comfy_dir):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    sync_playwright = _import_playwright(comfy_dir)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(_browser):
    context = _browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.console_errors = []
    page.http_errors = []
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(f"pageerror: {exc}"))
    page.on("response", lambda r: r.status >= 400 and page.http_errors.append(f"{r.status} {r.url}"))
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()
