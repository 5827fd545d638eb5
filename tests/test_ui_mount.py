"""`mount_ui`: the workbench at `/`, its assets under `/static`, and a clear page when the
assets were not built."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.ui import BUILD_COMMAND, mount_ui


def test_the_index_and_its_assets_are_served(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>wb</title>", encoding="utf-8")
    (tmp_path / "app.js").write_text("console.log(1)", encoding="utf-8")
    app = FastAPI()
    mount_ui(app, tmp_path)
    with TestClient(app) as http:
        index = http.get("/")
        script = http.get("/static/app.js")
    assert index.status_code == 200 and "<title>wb</title>" in index.text
    assert index.headers["cache-control"] == "no-cache"
    assert script.status_code == 200 and script.text == "console.log(1)"


def test_without_built_assets_the_root_says_how_to_build_them(tmp_path: Path) -> None:
    app = FastAPI()
    mount_ui(app, tmp_path / "missing")
    with TestClient(app) as http:
        response = http.get("/")
    assert response.status_code == 503
    assert BUILD_COMMAND in response.text
