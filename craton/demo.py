"""The demo fleet a new user sees first: one tenant, one region of hosts that Ansible reaches
over its ``local`` connection (so a playbook runs for real on this machine), in a small cloud's
group tree with the usual "control plane first" dependencies."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from craton.context import ADMIN
from craton.db.models import Group, Region, Tenant
from craton.inventory import groups, hosts, tenancy

TENANT = "demo"
REGION = "demo-local"

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
    fleet: list[dict[str, object]] = []
    for index in range(1, 4):
        fleet.append({"name": f"ctl-{index:02d}", "groups": ["control"],
                      "variables": {"rack": "r1"}})
    for index in range(1, 13):
        zone = "compute_a" if index <= 6 else "compute_b"
        fleet.append({"name": f"cmp-{index:02d}", "groups": [zone],
                      "variables": {"rack": f"r{2 + (index - 1) // 6}", "gpu": index % 4 == 0}})
    for index in range(1, 6):
        fleet.append({"name": f"sto-{index:02d}", "groups": ["storage"],
                      "variables": {"rack": "r4"}})
    for host in fleet:
        host.update(ip_address="127.0.0.1", state="ready")
    return fleet


def load_demo(session: Session) -> Region:
    """Create the demo tenant and region unless they exist; returns the region."""
    existing = session.scalar(
        select(Region).join(Tenant).where(Tenant.name == TENANT, Region.name == REGION))
    if existing is not None:
        return existing
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
    })
    for name, (parents, _, variables) in GROUPS.items():
        groups.create_group(session, ADMIN, region,
                            {"name": name, "parents": parents, "variables": variables})
    for name, (_, depends_on, _) in GROUPS.items():
        if depends_on:
            group = session.scalar(select(Group).where(Group.region_id == region.id,
                                                       Group.name == name))
            groups.update_group(session, ADMIN, group, {"depends_on": depends_on})
    hosts.create_hosts(session, ADMIN, region, demo_hosts(), numbered=True)
    return region
