"""The sandbox's command line and environment, as bubblewrap gets them (the attacks it stops
are in tests/integration/test_sandbox.py)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from craton.jobs.sandbox import Sandbox, check_available


def test_the_environment_keeps_ansibles_variables_and_drops_everything_else() -> None:
    runner_env = {"ANSIBLE_FORKS": "5", "AWX_ISOLATED_DATA_DIR": "/x", "RUNNER_OMIT_EVENTS": "0",
                  "JOB_ID": "1", "LANG": "C.UTF-8", "CRATON_DATABASE_URL": "mysql://u:pw@h/db",
                  "CRATON_REDIS_URL": "redis://:pw@h/0", "AWS_SECRET_ACCESS_KEY": "k",
                  "HOME": "/root", "PATH": "/root/.local/bin:/usr/bin"}
    env = Sandbox().environment(runner_env)
    assert {"ANSIBLE_FORKS", "AWX_ISOLATED_DATA_DIR", "RUNNER_OMIT_EVENTS", "JOB_ID",
            "LANG"} <= set(env)
    assert not {"CRATON_DATABASE_URL", "CRATON_REDIS_URL", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert env["HOME"] == env["TMPDIR"] == "/tmp"
    assert "/root" not in env["PATH"]


def test_a_command_sees_only_what_is_bound(tmp_path: Path) -> None:
    """A shell in the sandbox runs as nobody, finds its own directory writable and its
    parent's other files gone, /etc reduced to the allow-list and /tmp private."""
    own = tmp_path / "own"
    own.mkdir()
    scratch = f"/tmp/craton-sandbox-probe-{uuid.uuid4().hex}"
    (tmp_path / "neighbour.txt").write_text("secret")
    probe = ("id -u; test -e " + str(tmp_path / "neighbour.txt") + " && echo neighbour; "
             "touch " + str(own / "written") + " && echo wrote; "
             "test -e /etc/shadow && echo shadow; test -e /etc/passwd && echo passwd; "
             f"touch {scratch} && echo tmp")
    check_available()
    command = Sandbox().command(["/bin/sh", "-c", probe], writable=[own], cwd=str(own))
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, env={})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["65534", "wrote", "passwd", "tmp"]
    assert (own / "written").exists()
    assert not Path(scratch).exists()
