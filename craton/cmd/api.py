"""craton-api: serve the API and the web pages (``/ui/``) with gunicorn."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import Any

from gunicorn.app.base import BaseApplication

from craton.cmd import sandbox_ready
from craton.config import ConfigError, Settings, load_settings
from craton.policy import Policy


class CratonServer(BaseApplication):  # type: ignore[misc]
    """Gunicorn, configured from Craton's settings rather than from its own command line.
    The app is built in the worker (``load``), so no database connection crosses a fork."""

    def __init__(self, settings: Settings, bind: str) -> None:
        self.settings = settings
        self.bind = bind
        self.app: Any = None
        super().__init__()

    def load_config(self) -> None:
        api = self.settings.api
        options: dict[str, Any] = {
            "bind": self.bind,
            "workers": api.workers,
            "worker_class": "gthread",
            # Each event stream holds a thread for as long as it is open (see
            # craton.jobs.streams): they get threads of their own, so requests never wait.
            "threads": api.threads + api.max_streams,
            "worker_connections": api.threads + api.max_streams + 100,
            "timeout": 300,
            "graceful_timeout": 10,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": self.settings.DEFAULT.log_level.lower(),
            "proc_name": "craton-api",
            # gunicorn's control socket lives at one path per user: two servers would share it.
            "control_socket_disable": True,
            "worker_exit": self.worker_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from craton.api import create_app

        app = create_app(self.settings)
        services = app.extensions["craton"]
        threading.Thread(target=purge_discarded, args=(services,), daemon=True,
                         name="purge-discarded").start()
        if self.settings.jobs.engine == "embedded":
            resumed = services.jobs.engine.resume_interrupted()
            if resumed:
                logging.getLogger("craton").info("resuming interrupted jobs %s", resumed)
        self.app = app
        return app

    def worker_exit(self, _server: Any, _worker: Any) -> None:
        """Gunicorn stops this worker (SIGTERM, a restart): its running jobs stop and every
        event emitted so far is stored before the process ends. The stopped jobs' threads wait
        for the exit (their runs record nothing, and run again at the next start), so the
        process leaves without waiting for them."""
        if self.app is None:
            return
        if self.app.extensions["craton"].jobs.shutdown():
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)


def purge_discarded(services: Any) -> None:
    """Delete the payloads left by deletes whose payload delete failed (Barbican was down
    then), without holding up the start."""
    from craton.secrets import outbox

    try:
        drained = outbox.purge(services.db, services.secrets)
    except Exception as error:  # a background chore: say why, go on
        logging.getLogger("craton").warning("could not purge discarded payloads: %s",
                                            type(error).__name__)
        return
    if drained.deleted or drained.failed:
        logging.getLogger("craton").info(
            "deleted %d payloads of deleted secrets; %d still to delete",
            drained.deleted, drained.failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="craton-api", description=__doc__)
    parser.add_argument("--config", help="configuration file (default: $CRATON_CONFIG or "
                                         "/etc/craton/craton.conf when present)")
    parser.add_argument("--host", help="listen address (default: [api] host)")
    parser.add_argument("--port", type=int, help="listen port (default: [api] port)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        Policy(settings.policy.file or None)  # a broken policy.yaml stops us here, plainly
    except ConfigError as error:
        print(f"craton-api: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.DEFAULT.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = args.host or settings.api.host
    port = args.port or settings.api.port
    from craton.api.auth import is_loopback

    if settings.api.auth_strategy == "noauth" and not is_loopback(host):
        print(f"craton-api: refusing to serve without authentication on {host}: "
              "[api] auth_strategy = noauth (development only) is only allowed on a loopback "
              "address (127.0.0.1, ::1, localhost); set auth_strategy = apikey to serve "
              "other addresses", file=sys.stderr)
        return 2
    from craton.db import migrate

    if not sandbox_ready(settings, "craton-api"):
        return 2
    problem = migrate.schema_problem_at(settings.database_url)
    if problem:
        print(f"craton-api: {problem}", file=sys.stderr)
        return 2
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    # gunicorn reads sys.argv for its own options: give it none.
    sys.argv = sys.argv[:1]
    CratonServer(settings, bind).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
