"""A job over 50 local-connection hosts x 3 tasks, against plain ansible-playbook on the same
inventory with the same forks, measured in the same run.

Target (issue 4): the job (layout=ansible: one ansible-runner run, as ansible-playbook does)
within 1.10x of ansible-playbook — Craton's cost (bundle, TaskFlow, per-event storage) must
stay in the noise. layout=hosts (one ansible-runner run per host, so one ansible-playbook start
per host) is printed for information.

    python benchmarks/jobs.py [--hosts 50] [--forks 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from craton.api import create_app
from craton.config import DefaultSettings, Settings
from craton.db import migrate
from craton.db.session import Database

PLAYBOOK = """\
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


def setup(client, data_dir: Path, hosts: int) -> tuple[int, Path]:
    """The benchmark's region and its playbook directory (in its tenant's sources root)."""
    tenant = client.post("/v1/tenants", json={"name": "bench"}).get_json()
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
    (source / "play.yml").write_text(PLAYBOOK)
    return region["id"], source


def plain_ansible(client, region_id: int, forks: int, work: Path) -> float:
    """ansible-playbook on the same hosts' aggregate inventory (the bundle Craton serves)."""
    archive = client.get(f"/v1/inventory/{region_id}.tgz?layout=ansible").get_data()
    target = work / "plain"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "0",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    started = time.perf_counter()
    done = subprocess.run(["ansible-playbook", "-i", str(target / "inventory"), "-f",
                           str(forks), str(work / "play.yml")], env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-2000:]
    return elapsed


def job(client, region_id: int, forks: int, layout: str, source: Path) -> float:
    """From POST /v1/jobs (created_at) to the job's end (finished_at), as the job records
    them; polled lightly meanwhile — nothing watches a plain ansible-playbook run either."""
    response = client.post("/v1/jobs", json={
        "region_id": region_id, "playbook": "play.yml", "layout": layout, "forks": forks,
        "source": {"path": str(source)}})
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    while True:
        shown = client.get(f"/v1/jobs/{job_id}").get_json()
        if shown["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.05)
    assert shown["status"] == "succeeded", shown
    client.application.extensions["craton"].jobs.engine.wait(job_id, 60)  # the flow's last save
    posted = dt.datetime.fromisoformat(shown["created_at"].rstrip("Z"))
    ended = dt.datetime.fromisoformat(shown["finished_at"].rstrip("Z"))
    return (ended - posted).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        db = Database(f"sqlite:///{tmp}/bench.db")
        migrate.upgrade(db.engine)
        app = create_app(Settings(DEFAULT=DefaultSettings(data_dir=str(data_dir))), database=db)
        client = app.test_client()
        region_id, source = setup(client, data_dir, args.hosts)
        (Path(tmp) / "play.yml").write_text(PLAYBOOK)
        plain, aggregate, per_host = [], [], []
        for _ in range(args.runs):
            plain.append(plain_ansible(client, region_id, args.forks, Path(tmp)))
            aggregate.append(job(client, region_id, args.forks, "ansible", source))
        per_host.append(job(client, region_id, args.forks, "hosts", source))
        app.extensions["craton"].close()
        db.dispose()
    base, ours = statistics.median(plain), statistics.median(aggregate)
    print(f"{args.hosts} local hosts x 3 tasks, forks {args.forks}, {args.runs} runs each, "
          "interleaved:")
    print(f"  ansible-playbook             median {base:6.2f} s, best {min(plain):6.2f} s  "
          "(" + ", ".join(f"{t:.2f}" for t in plain) + ")")
    print(f"  job, layout=ansible          median {ours:6.2f} s, best {min(aggregate):6.2f} s  "
          "(" + ", ".join(f"{t:.2f}" for t in aggregate) + ")")
    print(f"  ratio: median {ours / base:.3f}x, best {min(aggregate) / min(plain):.3f}x "
          "(target <= 1.10x); noise only ever adds time, so best-to-best is the fairer one")
    print(f"  job, layout=hosts (1 run)    {per_host[0]:6.2f} s  (one ansible-playbook per host)")


if __name__ == "__main__":
    main()
