"""An installed wheel (not a source checkout) carries its migrations, its web pages and the demo
playbook: its craton-manage upgrades a database with the migrations inside the installed
package, demo load works from a plain install, and the pages are shipped."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

from craton.db import migrate
from craton.db.session import make_engine

REPO = Path(__file__).resolve().parents[2]


def test_installed_wheel_migrates_a_database(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(REPO), "-w", str(wheels)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob("craton-*.whl")
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    subprocess.run([str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True)
    dependencies = sysconfig.get_paths()["purelib"]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": dependencies,
           "CRATON_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    done = subprocess.run([str(target / "bin" / "craton-manage"), "db", "upgrade"],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    head = migrate.head_revision(make_engine("sqlite://"))
    assert f"database at revision {head}" in done.stdout
    located = subprocess.run(
        [str(target / "bin" / "python"), "-c",
         "from alembic.script import ScriptDirectory; from sqlalchemy import create_engine; "
         "import craton.db.migrate as m; "
         "print(ScriptDirectory.from_config(m.alembic_config(create_engine('sqlite://'))).dir)"],
        env=env, capture_output=True, text=True, cwd=tmp_path, check=True).stdout.strip()
    installed = sysconfig.get_paths(vars={"base": str(target), "platbase": str(target)})
    assert located == str(Path(installed["purelib"]) / "craton" / "db" / "migrations")

    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    web = REPO / "craton" / "web"
    for path in [*web.glob("static/*"), *web.glob("templates/*"),
                 *(REPO / "craton" / "demo_source").glob("*")]:
        assert path.relative_to(REPO).as_posix() in shipped, path
    loaded = subprocess.run([str(target / "bin" / "python"), "-m", "craton.cmd.manage", "demo",
                             "load"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert [path.relative_to(tmp_path / "data" / "sources") for path in
            (tmp_path / "data" / "sources").glob("*/demo/site.yml")] == [
        Path("1") / "demo" / "site.yml"]
