"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser),
against the dashboard as the API serves it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from api.conftest import kubernetes_api, other_namespace, standalone_api  # noqa: F401 - fixtures shared with the API tests
from e2e.conftest import cluster, crd, sample_data  # noqa: F401 - fixtures shared with the e2e tests
from e2e.harness import ROOT

CHROMIUM = "chromium"
# As root, without a GPU, and on a machine whose network reaches only the cluster: no
# sandbox, and none of the browser's own background connections.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "docs" / "images"
WIDE, NARROW = {"width": 1280, "height": 800}, {"width": 420, "height": 860}


@pytest.fixture
def page() -> Iterator[Page]:
    """A page of a new browser, closed after the test: Playwright's synchronous API keeps an
    event loop running in the test's thread while it is open, which no later test may find."""
    executable = shutil.which(CHROMIUM)
    if executable is None:
        pytest.fail("chromium is missing: scripts/platform-prereqs installs Debian's chromium package", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        page = browser.new_context(viewport=WIDE).new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    """Saved where the README shows it (docs/images/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
