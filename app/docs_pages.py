"""The API's documentation pages, /docs (Swagger UI) and /redoc, served with their scripts and styles
from this server instead of the jsDelivr CDN that FastAPI's defaults load them from: a hospital
network that cannot reach the internet otherwise gets blank pages. The files are the ones the
fastapi-offline package ships (MIT; Swagger UI 5, which renders OpenAPI 3.1 documents; the
swagger-ui-bundle package on PyPI ships version 4, which cannot), read from its installed folder."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"


def install_docs_pages(app: FastAPI) -> None:
    """Mount the assets and add /docs and /redoc (create the app with docs_url=None, redoc_url=None)."""
    app.mount(
        ASSETS_PATH, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets"
    )
    title = f"{app.title} API"

    def locations(request: Request) -> tuple[str, str]:
        """The OpenAPI document's URL and the assets' folder, under a reverse proxy's root path."""
        root = request.scope.get("root_path", "").rstrip("/")
        return f"{root}{app.openapi_url}", f"{root}{ASSETS_PATH}"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        document, assets = locations(request)
        return get_swagger_ui_html(
            openapi_url=document,
            title=title,
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        document, assets = locations(request)
        return get_redoc_html(
            openapi_url=document,
            title=title,
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )
