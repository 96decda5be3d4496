"""Jobs against plain ansible-playbook on the same inventory with the same forks, measured in
the same run, interleaved: 50 local-connection hosts x 3 tasks (forks 10) and 300 hosts x 1
task (forks 50); then the demo job.

Targets (issue 10): the default layout (``hosts``: one ansible-playbook run per dependency wave)
within 1.15x of ansible-playbook, median of 5 runs, in both shapes; ``layout=ansible`` (one
run) likewise; the demo job (20 hosts, two waves) done in <= 20 s on an idle machine. Jobs run
in the sandbox, as they do by default; ansible-playbook runs bare.

    python benchmarks/jobs.py [--runs 5] [--no-demo | --only-demo]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from craton import demo
from craton.api import create_app
from craton.config import DefaultSettings, Settings
from craton.db import migrate
from craton.db.session import Database

THREE_TASKS = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: one
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }} {{ role }}"
    - name: two
      ansible.builtin.set_fact:
        seen: "{{ rack }}"
    - name: three
      ansible.builtin.command: "true"
      changed_when: false
"""
ONE_TASK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: one
      ansible.builtin.command: "true"
      changed_when: false
"""
SHAPES = [("50 hosts x 3 tasks", 50, THREE_TASKS, 10), ("300 hosts x 1 task", 300, ONE_TASK, 50)]


def setup(client, data_dir: Path, name: str, hosts: int, playbook: str) -> tuple[int, Path]:
    """A region of ``hosts`` and its playbook directory (in its tenant's sources root)."""
    tenant = client.post("/v1/tenants", json={"name": name}).get_json()
    region = client.post(f"/v1/tenants/{tenant['id']}/regions", json={
        "name": "bench", "variables": {
            "ansible_connection": "local",
            "ansible_python_interpreter": os.path.abspath(sys.executable)}}).get_json()
    client.post(f"/v1/regions/{region['id']}/groups", json={"name": "compute"})
    created = client.post(f"/v1/regions/{region['id']}/hosts", json=[
        {"name": f"node-{i:03d}", "groups": ["compute"],
         "variables": {"role": "compute", "rack": f"r{i % 4}"}} for i in range(hosts)])
    assert created.status_code == 201, created.get_json()
    source = data_dir / "sources" / str(tenant["id"]) / "bench"
    source.mkdir(parents=True)
    (source / "play.yml").write_text(playbook)
    return region["id"], source


def plain_ansible(client, region_id: int, forks: int, source: Path, work: Path,
                  playbook: str = "play.yml", expect_failures: bool = False) -> float:
    """ansible-playbook on the same hosts' aggregate inventory (the bundle Craton serves)."""
    archive = client.get(f"/v1/inventory/{region_id}.tgz?layout=ansible").get_data()
    target = work / "plain"
    shutil.rmtree(target, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "0",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    started = time.perf_counter()
    done = subprocess.run(["ansible-playbook", "-i", str(target / "inventory"), "-f",
                           str(forks), str(source / playbook)], env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    assert done.returncode in ((2, 4) if expect_failures else (0,)), done.stdout[-2000:]
    return elapsed


def job(client, region_id: int, forks: int, layout: str | None, source: Path,
        playbook: str = "play.yml", status: str = "succeeded") -> float:
    """From POST /v1/jobs (created_at) to the job's end (finished_at), as the job records
    them; polled lightly meanwhile — nothing watches a plain ansible-playbook run either."""
    body = {"region_id": region_id, "playbook": playbook, "forks": forks,
            "source": {"path": str(source)}}
    if layout is not None:
        body["layout"] = layout
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    while True:
        shown = client.get(f"/v1/jobs/{job_id}").get_json()
        if shown["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.05)
    assert shown["status"] == status, shown
    client.application.extensions["craton"].jobs.engine.wait(job_id, 60)  # the flow's last save
    posted = dt.datetime.fromisoformat(shown["created_at"].rstrip("Z"))
    ended = dt.datetime.fromisoformat(shown["finished_at"].rstrip("Z"))
    return (ended - posted).total_seconds()


def demo_job(app, client, work: Path) -> tuple[float, float]:
    """The demo fleet (as ``craton-manage demo load`` makes it) and the job it suggests; and
    its playbook run once by ansible-playbook over the whole fleet (no waves), for scale."""
    services = app.extensions["craton"]
    with services.db.transaction() as session:
        region = demo.load_demo(session, services.settings)
        region_id, tenant_id = region.id, region.tenant_id
    source = demo.install_demo_source(services.settings, tenant_id)
    plain = plain_ansible(client, region_id, demo.DEMO_FORKS, source, work,
                          demo.DEMO_PLAYBOOK, expect_failures=True)
    return job(client, region_id, demo.DEMO_FORKS, None, source, demo.DEMO_PLAYBOOK,
               "failed"), plain


def figures(times: list[float]) -> str:
    return f"median {statistics.median(times):6.2f} s, best {min(times):6.2f} s  (" + \
        ", ".join(f"{t:.2f}" for t in times) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--only-demo", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        db = Database(f"sqlite:///{tmp}/bench.db")
        migrate.upgrade(db.engine)
        app = create_app(Settings(DEFAULT=DefaultSettings(data_dir=str(data_dir))), database=db)
        client = app.test_client()
        for index, (title, hosts, playbook, forks) in enumerate(
                [] if args.only_demo else SHAPES):
            region_id, source = setup(client, data_dir, f"bench-{index}", hosts, playbook)
            times: dict[str, list[float]] = {"ansible-playbook": [], "job (default layout)": [],
                                             "job, layout=ansible": []}
            for _ in range(args.runs):
                times["ansible-playbook"].append(
                    plain_ansible(client, region_id, forks, source, Path(tmp)))
                times["job (default layout)"].append(job(client, region_id, forks, None, source))
                times["job, layout=ansible"].append(
                    job(client, region_id, forks, "ansible", source))
            base = statistics.median(times["ansible-playbook"])
            print(f"{title}, forks {forks}, {args.runs} runs each, interleaved:")
            for name, measured in times.items():
                ratio = "" if name == "ansible-playbook" else \
                    f"  -> {statistics.median(measured) / base:.3f}x (target <= 1.15x)"
                print(f"  {name:22} {figures(measured)}{ratio}")
        if not args.no_demo:
            took, plain = demo_job(app, client, Path(tmp))
            print(f"demo job (20 hosts, 2 waves, forks {demo.DEMO_FORKS}): {took:.2f} s "
                  f"(target <= 20 s); its playbook in one ansible-playbook run: {plain:.2f} s")
        app.extensions["craton"].close()
        db.dispose()


if __name__ == "__main__":
    main()
