"""The web pages as served: shells that hold no inventory data, their scripts and styles shipped
with the package (nothing from a CDN), and the start form's defaults pointing at the demo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from craton import demo
from craton.config import Settings
from craton.db.session import Database

STATIC = Path(__file__).resolve().parents[2] / "craton" / "web" / "static"


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.mark.parametrize(("path", "script"), [
    ("/ui/", "jobs.js"), ("/ui/jobs/7", "job.js"), ("/ui/hosts/7", "host.js")])
def test_pages_load_only_what_the_package_ships(web: FlaskClient, path: str,
                                                script: str) -> None:
    response = web.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert f'<script type="module" src="/ui/static/{script}">' in page
    linked = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert all(url.startswith("/") and not url.startswith("//") for url in linked), linked
    for url in linked:
        if url.startswith("/ui/static/"):
            assert web.get(url).status_code == 200, url


def test_scripts_import_nothing_from_elsewhere() -> None:
    for source in STATIC.glob("*.js"):
        for target in re.findall(r'from\s+"([^"]+)"', source.read_text()):
            assert target.startswith("./") and (STATIC / target).is_file(), (source, target)
    for sheet in STATIC.glob("*.css"):
        assert "url(" not in sheet.read_text() and "@import" not in sheet.read_text()


def test_static_files_have_their_types(web: FlaskClient) -> None:
    assert web.get("/ui/static/job.js").mimetype == "text/javascript"
    assert web.get("/ui/static/craton.css").mimetype == "text/css"
    assert web.get("/ui/static/craton.svg").mimetype == "image/svg+xml"
    assert web.get("/ui/static/nothing.js").status_code == 404


def test_the_root_sends_a_browser_to_the_pages(web: FlaskClient) -> None:
    response = web.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/"


def test_an_unknown_page_is_a_404(web: FlaskClient) -> None:
    assert web.get("/ui/jobs/x").status_code == 404
    assert web.get("/ui/nothing").status_code == 404


def defaults(web: FlaskClient) -> dict[str, object]:
    page = web.get("/ui/").get_data(as_text=True)
    (raw,) = re.findall(r'data-defaults="([^"]*)"', page)
    return json.loads(raw.replace("&#34;", '"'))


def test_the_start_form_offers_the_demo_once_it_is_loaded(web: FlaskClient, settings: Settings,
                                                          database: Database) -> None:
    assert defaults(web) == {}
    with database.transaction() as session:
        region = demo.load_demo(session, settings)
    assert defaults(web) == {}, "no playbook to offer yet"
    source = demo.install_demo_source(settings, region.tenant_id)
    assert source == settings.data_dir / "sources" / str(region.tenant_id) / "demo"
    assert defaults(web) == {
        "region_id": region.id, "source_path": str(source),
        "playbook": demo.DEMO_PLAYBOOK, "forks": demo.DEMO_FORKS}


@pytest.mark.parametrize("path", ["/ui/", "/ui/jobs/7", "/ui/hosts/7"])
def test_pages_hold_no_inline_script_the_csp_would_block(web: FlaskClient, path: str) -> None:
    """script-src 'self': every script is a file, no handler an attribute; and the sign-in
    form is on every page, hidden until the API asks for credentials."""
    response = web.get(path)
    page = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, flags=re.S)
    assert scripts and all(body.strip() == "" for body in scripts)
    assert re.findall(r"<script\b(?![^>]*\bsrc=)[^>]*>", page) == []
    assert re.findall(r"\son[a-z]+\s*=", page) == []
    assert "javascript:" not in page
    assert re.search(r'<section class="card signin" id="signin"[^>]*\bhidden>', page)
