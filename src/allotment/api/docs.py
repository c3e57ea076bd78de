"""The OpenAPI document and the interactive docs page, both public (no key needed): the document
describes the API, not its data, and the page must load it before anyone has pasted a key.

The page is Swagger UI served from the `swagger-ui-bundle` package, so it loads nothing from
another origin (no CDN); its policy allows scripts from this server only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from swagger_ui_bundle import swagger_ui_path

router = APIRouter(include_in_schema=False)

_ASSETS = Path(swagger_ui_path)
_ASSET_NAMES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Allotment API</title>
<link rel="icon" href="/api/v1/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/api/v1/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/v1/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/v1/docs/assets/start.js"></script>
</body>
</html>
"""
_START = """window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
});
"""


@router.get("/api/v1/openapi.json")
def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/api/v1/docs")
def docs_page() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers={"Content-Security-Policy": _POLICY})


@router.get("/api/v1/docs/assets/start.js")
def docs_start() -> Response:
    return Response(_START, media_type="text/javascript")


@router.get("/api/v1/docs/assets/{name}")
def docs_asset(name: str) -> FileResponse:
    if name not in _ASSET_NAMES:
        raise HTTPException(404, "no such asset")
    return FileResponse(_ASSETS / name, headers={"Cache-Control": "public, max-age=86400"})
