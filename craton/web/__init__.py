"""The web pages: recent jobs and a form to start one (``/ui/``), the live "cloud progress
bar" of a job (``/ui/jobs/<id>``) and a host's status and jobs (``/ui/hosts/<id>``).

The pages are shells: they hold no inventory data. Their scripts read everything through the
``/v1`` API with the caller's own credentials (same origin, the same headers any API client
sends), and follow a job live over its Server-Sent Events stream. Everything they need ships
in ``static/``: no CDN, no external fonts.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, current_app, redirect, render_template, url_for
from werkzeug.wrappers import Response

from craton import __version__, demo

"""The demo fleet's 20 hosts in two waves: a first look that takes well under a minute."""

blp = Blueprint("web", __name__, url_prefix="/ui", template_folder="templates",
                static_folder="static", static_url_path="/static")


def _page(template: str, **context: Any) -> str:
    return render_template(template, version=__version__, **context)


@blp.get("/")
def jobs_page() -> str:
    return _page("jobs.html", page="jobs", title="Jobs", defaults=json.dumps(form_defaults()))


def form_defaults() -> dict[str, Any]:
    """What the "start a job" form offers first: the demo fleet and its playbook, when this
    installation has them (names only: the page reads the rest through the API)."""
    services = current_app.extensions["craton"]
    with services.db.transaction(write=False) as session:
        region = demo.find_region(session)
        if region is None:
            return {}
        region_id, tenant_id = region.id, region.tenant_id
    source = demo.demo_source_dir(services.settings, tenant_id)
    if not (source / demo.DEMO_PLAYBOOK).is_file():
        return {}
    return {"region_id": region_id, "source_path": str(source), "playbook": demo.DEMO_PLAYBOOK,
            "forks": demo.DEMO_FORKS}


@blp.get("/jobs/<int:job_id>")
def job_page(job_id: int) -> str:
    return _page("job.html", page="job", title=f"Job {job_id}", job_id=job_id)


@blp.get("/hosts/<int:host_id>")
def host_page(host_id: int) -> str:
    return _page("host.html", page="host", title=f"Host {host_id}", host_id=host_id)


def register(app: Flask) -> None:
    """Serve the pages under /ui/, and send a browser that asks for / there."""
    app.register_blueprint(blp)

    @app.get("/")
    def _root() -> Response:
        return redirect(url_for("web.jobs_page"))
