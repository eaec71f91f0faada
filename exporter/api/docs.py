"""``GET /docs``: the API reference (Swagger UI), its JavaScript, CSS and icon served by the
exporter itself from the ``swagger_ui_bundle`` package, so that the page works without internet
(FastAPI's own page loads them from a CDN, and is blank offline).

The assets are mounted at :data:`ASSETS` (:func:`mount`); like ``/docs`` and ``/openapi.json``
they are ``GET`` requests, so the read policy covers them (api/security.py). ReDoc is not
served: no package ships its bundle alongside Swagger UI's.

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures.)
"""

from typing import Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from exporter.api.context import Context

#: The page, and where Swagger UI's files are served from.
DOCS: Final = "/docs"
ASSETS: Final = "/static/swagger-ui"
#: Where Swagger UI sends an OAuth2 login back to (FastAPI's default path, kept).
OAUTH2_REDIRECT: Final = "/docs/oauth2-redirect"


def router(ctx: Context) -> APIRouter:
    r = APIRouter()

    @r.get(DOCS, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        app = request.app
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @r.get(OAUTH2_REDIRECT, include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    return r


def mount(app: FastAPI) -> None:
    """Serve Swagger UI's files at :data:`ASSETS`: a mount on the app itself, as older FastAPI
    releases drop a mount from an included router (fastapi/fastapi#10180)."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
