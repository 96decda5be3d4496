"""The plugin needs ansible-core and nothing else: in a virtualenv that holds only
ansible-core and what it requires (none of Craton's server dependencies, nor Craton), the
installed collection lists a region. The virtualenv is made from the distributions already
installed here (their files linked in), since nothing may be downloaded."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.integration.test_server import Server
from tests.plugin.conftest import Ansible, write_config

LIST = ("import sys; from ansible.cli.inventory import main; "
        "sys.argv = ['ansible-inventory', *sys.argv[1:]]; sys.exit(main())")


def requirements_of(name: str) -> set[str]:
    """``name`` and every distribution it requires, transitively (markers as this Python
    evaluates them, no extras)."""
    found: set[str] = set()
    pending = [name]
    while pending:
        current = canonicalize_name(pending.pop())
        if current in found:
            continue
        found.add(current)
        for line in importlib.metadata.distribution(current).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


def ansible_core_only(target: Path) -> Path:
    """A virtualenv at ``target`` whose site-packages holds ansible-core and its
    requirements (linked from this interpreter's), and nothing else; its python."""
    venv.create(target, symlinks=True, with_pip=False)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = target / "lib" / version / "site-packages"
    for name in sorted(requirements_of("ansible-core")):
        distribution = importlib.metadata.distribution(name)
        tops = {Path(str(file)).parts[0] for file in distribution.files or []
                if not str(file).startswith("..")}
        for top in tops:
            source = Path(str(distribution.locate_file(top)))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    return target / "bin" / "python"


def test_the_plugin_runs_with_ansible_core_alone(api: Server, ansible: Ansible,
                                                 region: dict[str, Any],
                                                 tmp_path: Path) -> None:
    python = ansible_core_only(tmp_path / "venv")
    # Nothing of this checkout's either: no PYTHONPATH, and a working directory of its own
    # (``python -c`` imports from the working directory).
    env = {key: value for key, value in ansible.env.items() if key != "PYTHONPATH"}
    installed = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; "
                            "print(sorted(d.metadata['Name'] for d in m.distributions()))"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    names = {canonicalize_name(name) for name in json.loads(installed.replace("'", '"'))}
    assert "ansible-core" in names and "pyyaml" in names
    assert not names & {"craton", "flask", "sqlalchemy", "taskflow", "gunicorn", "redis"}
    refused = subprocess.run([str(python), "-c", "import craton"], env=env, cwd=tmp_path,
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "No module named 'craton'" in refused.stderr

    config = write_config(tmp_path / "craton.yml", api, region["id"])
    done = subprocess.run([str(python), "-c", LIST, "-i", str(config), "--list"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = json.loads(done.stdout)
    assert sorted(listed["compute"]["hosts"]) == ["c1", "c2"]
    assert listed["_meta"]["hostvars"]["s1"]["role"] == "storage"
