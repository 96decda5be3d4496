"""craton-worker: run jobs posted to the Redis jobboard (``[jobs] engine = distributed``).

Start as many workers as you like, on any machines that reach the database and Redis. Each
claims jobs, runs them and keeps its claims alive; when a worker dies, another takes its jobs
over within ``[jobs] claim_expiry`` seconds. SIGTERM or SIGINT stops a worker cleanly: it
claims nothing more and its running jobs stop after their running tasks and go back to the
board, where another worker resumes them (a second signal exits at once).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from craton.cmd import sandbox_ready
from craton.config import ConfigError, Settings, load_settings, without_password
from craton.policy import Policy

LOG = logging.getLogger("craton.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="craton-worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="configuration file (default: $CRATON_CONFIG or "
                                         "/etc/craton/craton.conf when present)")
    parser.add_argument("--name", help="this worker's name on the jobboard (default: "
                                       "craton-worker@<hostname>:<pid>)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        Policy(settings.policy.file or None)  # a broken policy.yaml stops us here, plainly
    except ConfigError as error:
        print(f"craton-worker: {error}", file=sys.stderr)
        return 2
    if settings.jobs.engine != "distributed":
        print(f"craton-worker: [jobs] engine is {settings.jobs.engine!r}, so the API runs jobs "
              "itself; set [jobs] engine = distributed and [redis] url to run workers",
              file=sys.stderr)
        return 2
    if not settings.redis.url:
        print("craton-worker: [jobs] engine = distributed needs [redis] url", file=sys.stderr)
        return 2
    logging.basicConfig(stream=sys.stderr, level=settings.DEFAULT.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin set-up chatter
    if not sandbox_ready(settings, "craton-worker"):
        return 2
    return serve(settings, args.name)


def serve(settings: Settings, name: str | None) -> int:
    """Run a conductor until SIGTERM/SIGINT."""
    from craton.db.session import Database
    from craton.jobs.distributed import make_board
    from craton.jobs.runtime import JobRuntime, register, unregister
    from craton.jobs.worker import Conductor
    from craton.secrets import outbox
    from craton.secrets.backends import load_backend
    from craton.sources.fetch import Fetcher

    db = Database(settings.database_url, pool_size=settings.database.pool_size,
                  pool_recycle=settings.database.pool_recycle)
    secret_store = load_backend(settings)
    outbox.attach(db, secret_store)
    runtime = JobRuntime(settings, db, secret_store, Fetcher(settings))
    register(runtime)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            LOG.warning("second %s: exiting now; other workers take this one's jobs over",
                        signal.Signals(signum).name)
            os._exit(1)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        board = make_board(runtime)
    except Exception as error:
        LOG.error("cannot reach the jobboard at %s: %s", without_password(settings.redis.url),
                  error)
        unregister(runtime)
        runtime.close()
        db.dispose()
        return 1
    conductor = Conductor(runtime, board, name)
    thread = threading.Thread(target=conductor.run, name="craton-conductor")
    thread.start()
    LOG.info("%s taking jobs from %s (up to %d at a time)", conductor.name,
             without_password(settings.redis.url), settings.jobs.concurrent_jobs)
    try:
        while not stopping.wait(0.5):
            if not thread.is_alive():
                LOG.error("the conductor stopped on its own")
                return 1
        running = conductor.running()
        LOG.info("stopping%s", f" (running jobs {running}: each stops after its running "
                               "tasks and goes back to the board)" if running else "")
        conductor.stop()
        thread.join()
        return 0
    finally:
        conductor.stop()
        thread.join()
        conductor.close()
        unregister(runtime)
        runtime.close()
        db.dispose()
        LOG.info("stopped")


if __name__ == "__main__":
    raise SystemExit(main())
