"""``/docs`` works offline: Swagger UI's files are the exporter's own (exporter/api/docs.py).

In process (TestClient): the page refers to local URLs only, its assets answer with their media
types, ReDoc (CDN only) is gone, the read policy covers the assets as it covers the page. In
Chromium (tests/browser.py), against a real exporter: with every request outside 127.0.0.1
aborted, Swagger UI renders the API from ``/openapi.json``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from exporter.api.docs import ASSETS, OAUTH2_REDIRECT
from exporter.app import create_app
from exporter.config import load_settings
from tests.browser import Page, PageLog, screenshot
from tests.conftest import Exporter
from tests.helpers import ExporterProcess

Make = Callable[..., Exporter]
#: What the page loads, and the media type each must have.
ASSET_TYPES = {
    f"{ASSETS}/swagger-ui-bundle.js": "text/javascript",
    f"{ASSETS}/swagger-ui.css": "text/css",
    f"{ASSETS}/favicon-32x32.png": "image/png",
}


def test_docs_refers_to_local_assets_only(make_exporter: Make) -> None:
    client = make_exporter().client
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text
    referenced = set(re.findall(r'(?:src|href)="([^"]+)"', r.text))
    assert referenced == set(ASSET_TYPES)
    assert "url: '/openapi.json'" in r.text
    assert f"'{OAUTH2_REDIRECT}'" in r.text
    for path, media_type in ASSET_TYPES.items():
        asset = client.get(path)
        assert asset.status_code == 200, path
        assert asset.headers["content-type"].split(";")[0] == media_type, path
        assert len(asset.content) > 500, path
    redirect = client.get(OAUTH2_REDIRECT)
    assert redirect.status_code == 200 and "oauth2" in redirect.text
    assert client.get("/docs/").status_code == 200  # a trailing slash is ignored


def test_redoc_is_gone_and_the_assets_are_not_in_the_api(make_exporter: Make) -> None:
    client = make_exporter().client
    r = client.get("/redoc")
    assert r.status_code == 404 and r.json()["reason"] == "unknown_path"
    missing = client.get(f"{ASSETS}/nothing.js")
    assert missing.status_code == 404 and missing.json()["reason"] == "unknown_path"
    assert client.get(ASSETS + "/").status_code == 404  # no directory listing
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/static", "/redoc"))]


@pytest.fixture
def guarded() -> Iterator[TestClient]:
    app = create_app(load_settings(None, auth={"metrics_tokens": ["read-tok"]}), drift_worker=False)
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        yield client


def test_the_assets_follow_the_read_policy_as_openapi_json(guarded: TestClient) -> None:
    token = {"Authorization": "Bearer read-tok"}
    for path in ("/openapi.json", "/docs", OAUTH2_REDIRECT, *ASSET_TYPES):
        r = guarded.get(path)
        assert r.status_code == 401 and r.json()["reason"] == "unauthorized", path
        assert guarded.get(path, headers=token).status_code == 200, path


# -- in Chromium, offline ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[ExporterProcess]:
    exporter = ExporterProcess()
    try:
        yield exporter
    finally:
        exporter.stop()


def operation(page: Page, method: str, path: str) -> Any:
    """Swagger UI's block of one operation (its summary line)."""
    return page.locator(f".opblock-{method.lower()} .opblock-summary").filter(
        has=page.locator(f'[data-path="{path}"]')
    )


@pytest.mark.e2e
def test_swagger_ui_renders_the_api_offline(
    served: ExporterProcess, page: Page, page_log: PageLog
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{served.url}/docs")
    title = page.locator(".information-container .title")
    title.wait_for()
    assert title.inner_text().startswith("model-exporter")
    assert page.title() == "model-exporter - Swagger UI"
    for method, path in (
        ("POST", "/v1/predictions"),
        ("PUT", "/v1/models/{model}/reference"),
        ("GET", "/metrics"),
        ("GET", "/v1/models"),
    ):
        block = operation(page, method, path)
        block.first.wait_for()
        assert block.count() == 1, (method, path)
    assert page.locator(".errors-wrapper").count() == 0  # "Unable to render this definition"
    # Open one (a small one: Swagger UI resolves a big one's schemas for seconds): its
    # responses are shown, from the OpenAPI document.
    operation(page, "GET", "/metrics").click()
    codes = page.locator(".opblock-get.is-open .responses-table .response-col_status")
    codes.first.wait_for()
    assert "200" in [text.strip() for text in codes.all_inner_texts()]
    screenshot(page, "docs")
    assert requested and all(url.startswith(served.url + "/") for url in requested), requested
    assert f"{served.url}/openapi.json" in requested
    assert page_log.problems() == []
