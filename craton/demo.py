"""The demo fleet a new user sees first: one tenant, one region of hosts that Ansible reaches
over its ``local`` connection (so a playbook runs for real on this machine), in a small cloud's
group tree with the usual "control plane first" dependencies — and a playbook to run on it.

The playbook ships in the package (``craton/demo_source/``) and is copied below the demo
tenant's sources root, where a job of the demo region may read it. Two hosts are there to show
what goes wrong: one fails its disk check, one cannot be reached — so the first job a user runs
shows every state a host can end in.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from craton.config import TENANT_PLACEHOLDER, Settings
from craton.context import ADMIN
from craton.db.models import Group, Region, Tenant
from craton.files import private_dir
from craton.inventory import groups, hosts, tenancy
from craton.secrets.backends import load_backend

TENANT = "demo"
REGION = "demo-local"
DEMO_PLAYBOOK = "site.yml"
DEMO_FORKS = 20
"""Hosts the demo job runs at once: its largest wave (17 hosts) in one go."""
"""The playbook of the demo source, "Converge the demo cloud"."""
DISK_FAILURE_HOST = "cmp-07"
"""Its disk check fails (host variable ``demo_disk_failure``)."""
UNREACHABLE_HOST = "sto-04"
"""Ansible reaches it over SSH at a port where nothing listens."""
UNREACHABLE_VARIABLES: dict[str, object] = {
    "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9}

# group → (parents, depends_on, variables)
GROUPS: dict[str, tuple[list[str], list[str], dict[str, object]]] = {
    "cloud": ([], [], {"ntp_server": "pool.ntp.org"}),
    "control": (["cloud"], [], {"role": "control", "ansible_group_priority": 10}),
    "compute": (["cloud"], ["control"], {"role": "compute", "nova_cpu_allocation_ratio": 4.0}),
    "compute_a": (["compute"], [], {"availability_zone": "az-a"}),
    "compute_b": (["compute"], [], {"availability_zone": "az-b"}),
    "storage": (["cloud"], ["control"], {"role": "storage", "ceph_osd_count": 4}),
}


def demo_hosts() -> list[dict[str, object]]:
    fleet = [_demo_host(f"ctl-{index:02d}", "control", {"rack": "r1"}) for index in range(1, 4)]
    for index in range(1, 13):
        zone = "compute_a" if index <= 6 else "compute_b"
        fleet.append(_demo_host(f"cmp-{index:02d}", zone, {
            "rack": f"r{2 + (index - 1) // 6}", "gpu": index % 4 == 0}))
    fleet += [_demo_host(f"sto-{index:02d}", "storage", {"rack": "r4"}) for index in range(1, 6)]
    return fleet


def _demo_host(name: str, group: str, variables: dict[str, object]) -> dict[str, object]:
    if name == DISK_FAILURE_HOST:
        variables["demo_disk_failure"] = True
    if name == UNREACHABLE_HOST:
        variables.update(UNREACHABLE_VARIABLES)
    return {"name": name, "groups": [group], "variables": variables,
            "ip_address": "127.0.0.1", "state": "ready"}


def demo_source_dir(settings: Settings, tenant_id: int) -> Path:
    """Where ``demo load`` puts the demo playbooks: ``demo`` in the first of ``[sources]
    file_roots`` as the demo tenant (``tenant_id``) reads it — by default
    ``<data_dir>/sources/<tenant id>/demo`` — so a job of the demo region may use it."""
    root = settings.file_roots[0].replace(TENANT_PLACEHOLDER, str(int(tenant_id)))
    return Path(root).expanduser() / "demo"


def install_demo_source(settings: Settings, tenant_id: int) -> Path:
    """Copy the demo playbooks shipped with Craton to :func:`demo_source_dir`, replacing what
    an earlier load (an older version) left there; returns the directory."""
    target = demo_source_dir(settings, tenant_id)
    private_dir(target.parent)
    staging = target.with_name(f".{target.name}.new-{os.getpid()}")
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    _copy_tree(resources.files("craton") / "demo_source", staging)
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
    return target


def _copy_tree(source: Traversable, target: Path) -> None:
    target.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            _copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())


def find_region(session: Session) -> Region | None:
    """The demo region, if it was loaded."""
    return session.scalar(
        select(Region).join(Tenant).where(Tenant.name == TENANT, Region.name == REGION))


def load_demo(session: Session, settings: Settings) -> Region:
    """Create the demo tenant and region unless they exist; returns the region."""
    existing = find_region(session)
    if existing is not None:
        return existing
    sealer = load_backend(settings)
    tenant = session.scalar(select(Tenant).where(Tenant.name == TENANT)) or \
        tenancy.create_tenant(session, ADMIN, {"name": TENANT,
                                               "description": "Demo fleet on this machine"})
    region = tenancy.create_region(session, ADMIN, tenant.id, {
        "name": REGION,
        "description": "Hosts reached over Ansible's local connection",
        "variables": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "dns_domain": "demo.craton.local",
        },
    }, limits=settings.limits, sealer=sealer)
    for name, (parents, _, variables) in GROUPS.items():
        groups.create_group(session, ADMIN, region,
                            {"name": name, "parents": parents, "variables": variables},
                            limits=settings.limits, quotas=settings.quotas,
                       sealer=sealer)
    for name, (_, depends_on, _) in GROUPS.items():
        if depends_on:
            group = session.scalar(select(Group).where(Group.region_id == region.id,
                                                       Group.name == name))
            groups.update_group(session, ADMIN, group, {"depends_on": depends_on},
                                limits=settings.limits, sealer=sealer)
    hosts.create_hosts(session, ADMIN, region, demo_hosts(), numbered=True,
                       limits=settings.limits, quotas=settings.quotas,
                       sealer=sealer)
    return region
