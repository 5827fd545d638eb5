"""The analyst workbench: the built single-page app (`frontend/` → `api/static/`) at `/`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
BUILD_COMMAND = "cd frontend && npm ci && npm run build"

_NOT_BUILT = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>riskgraph</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>riskgraph</h1>
<p>The workbench assets are not built. Build them with <code>{BUILD_COMMAND}</code>
and restart the server. The REST API is available: <a href="/docs">/docs</a>.</p>
</body></html>"""


def mount_ui(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    """Serve the workbench: `/` is the app, `/static/*` its bundled assets.

    When the assets were not built, `/` says how to build them instead of failing.

    Example:
        >>> app = create_app(store)  # doctest: +SKIP
        >>> mount_ui(app)  # doctest: +SKIP
    """
    index = static_dir / "index.html"
    if static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")

    @app.get("/", include_in_schema=False, response_model=None)
    def workbench() -> Response:
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT, status_code=503)
        # The bundle's name does not change between builds: always revalidate.
        return FileResponse(index, headers={"Cache-Control": "no-cache"})
