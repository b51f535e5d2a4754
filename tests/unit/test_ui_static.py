"""/ui/: the API serves the built dashboard, answers its own pages with index.html, never a
file outside the built folder, and says plainly when the dashboard is not built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from pravah_api.app import create_app, resources
from pravah_api.settings import ApiSettings

INDEX = "<!doctype html><title>Pravah</title><div id=root></div>"


async def client_for(directory: Path, enabled: bool = True) -> TestClient:
    app = create_app(ApiSettings(database_url="postgresql://unused", kubeconfig="unused",
                                 api_auth_mode="kubernetes", api_ui_dir=directory, api_ui=enabled))
    app.cleanup_ctx.remove(resources)
    return TestClient(TestServer(app))


@pytest.fixture
def built(tmp_path) -> Path:
    directory = tmp_path / "ui_dist"
    (directory / "assets").mkdir(parents=True)
    (directory / "index.html").write_text(INDEX)
    (directory / "assets" / "index-3f2a.js").write_text("console.log('dashboard')")
    (tmp_path / "secret.txt").write_text("not for callers")
    return directory


@pytest_asyncio.fixture(loop_scope="function")
async def ui(built) -> AsyncIterator[TestClient]:
    async with await client_for(built) as client:
        yield client


async def test_index_and_assets_are_served_with_a_strict_policy(ui):
    page = await ui.get("/ui/")
    assert page.status == 200 and await page.text() == INDEX
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-cache"
    asset = await ui.get("/ui/assets/index-3f2a.js")
    assert await asset.text() == "console.log('dashboard')"
    assert "immutable" in asset.headers["Cache-Control"]
    moved = await ui.get("/ui", allow_redirects=False)
    assert moved.status == 308 and moved.headers["Location"] == "/ui/"


async def test_the_dashboards_own_pages_answer_index(ui):
    for path in ("/ui/jobs", "/ui/jobs/3b1c/results", "/ui/submit"):
        answer = await ui.get(path)
        assert answer.status == 200 and await answer.text() == INDEX, path


@pytest.mark.parametrize("path", ["/ui/../secret.txt", "/ui/%2e%2e/secret.txt", "/ui/assets/%2e%2e/%2e%2e/secret.txt",
                                  "/ui/..%2fsecret.txt"])
async def test_no_file_outside_the_built_folder_is_served(ui, path):
    answer = await ui.get(path)
    assert "not for callers" not in await answer.text()


async def test_an_api_without_the_built_dashboard_says_so(tmp_path):
    async with await client_for(tmp_path / "missing") as client:
        answer = await client.get("/ui/")
        assert answer.status == 503
        error = (await answer.json())["error"]
        assert error["code"] == "ui_not_built" and "make setup" in error["message"]
        assert (await client.get("/healthz")).status == 200


async def test_a_dashboard_turned_off_is_not_served(built):
    async with await client_for(built, enabled=False) as client:
        answer = await client.get("/ui/")
        assert answer.status == 404 and INDEX not in await answer.text()
