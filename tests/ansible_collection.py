"""The craton.fleet Ansible collection as a user gets it: built by ``ansible-galaxy collection
build`` from ``ansible_collection/`` and installed from the tarball into a collections path
of its own, and the environment Ansible's commands need to find it there (and nothing of the
caller's Craton or Ansible settings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fidelity import ANSIBLE_ENV
from tests.services import environment_without_craton

SOURCE = Path(__file__).resolve().parent.parent / "ansible_collection"
BIN = Path(sys.executable).parent
PLUGIN = "craton.fleet.craton"


def build_and_install(work: Path) -> Path:
    """Build the collection into ``work/dist``, install the tarball into
    ``work/collections`` (offline: it needs nothing else) and return that path."""
    dist, installed = work / "dist", work / "collections"
    _galaxy("collection", "build", str(SOURCE), "--output-path", str(dist))
    tarballs = list(dist.glob("craton-fleet-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    _galaxy("collection", "install", "--offline", "-p", str(installed), str(tarballs[0]))
    assert (installed / "ansible_collections/craton/fleet/plugins/inventory/craton.py").is_file()
    return installed


def ansible_environment(collections: Path, home: Path, **extra: str) -> dict[str, str]:
    """The environment for ansible-inventory and ansible-playbook: the collections path,
    an ANSIBLE_HOME (and so local temporary files) under ``home``, no CRATON_* of the
    caller's, and what tests.fidelity runs Ansible with."""
    return {**environment_without_craton(), **ANSIBLE_ENV,
            "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"), **extra}


def _galaxy(*args: str) -> None:
    done = subprocess.run([str(BIN / "ansible-galaxy"), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
