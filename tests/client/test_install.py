"""The client installs on its own: its wheel, built from client/, goes into a fresh
virtualenv with nothing but what it asks for (from the wheelhouse scripts/test keeps, so
nothing is downloaded), and none of the server's dependencies come with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client"
WHEELHOUSE = Path(sys.prefix) / "wheelhouse"
SERVER_ONLY = {"flask", "sqlalchemy", "taskflow", "gunicorn", "alembic", "ansible-core",
               "ansible-runner", "redis", "pymysql", "flask-smorest", "craton"}


def run(*command: str | Path) -> str:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def test_client_installs_without_the_server(tmp_path: Path) -> None:
    assert (WHEELHOUSE / ".stamp").exists(), \
        f"{WHEELHOUSE} is missing: scripts/test (ensure_venv test) builds it"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "--wheel-dir", tmp_path / "built", CLIENT)
    wheel = next((tmp_path / "built").glob("cratonclient-*.whl"))
    venv = tmp_path / "venv"
    # Without a pip of its own (ensurepip costs seconds): this pip installs into it.
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check")
    run(*pip, "install", "-q", "--no-index", "--no-compile", "--find-links", WHEELHOUSE, wheel)
    installed = {item["name"].lower().replace("_", "-") for item in
                 json.loads(run(*pip, "list", "--format", "json"))}
    print("installed with the client:", sorted(installed))
    assert "cratonclient" in installed and {"cliff", "keystoneauth1", "requests"} <= installed
    assert installed & SERVER_ONLY == set()
    assert "Commands:" in run(venv / "bin" / "craton", "--help")
    typed = run(python, "-c", "import cratonclient, pathlib; print(pathlib.Path("
                "cratonclient.__file__).with_name('py.typed').exists())")
    assert typed.strip() == "True"
