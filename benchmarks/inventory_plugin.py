"""Time ``ansible-inventory -i craton.yml --list`` through the craton.fleet inventory plugin,
end to end, against a real craton-api, next to ``ansible-inventory --list`` over the same
bundle downloaded and extracted — and show where the time goes.

Fleet: benchmarks/bundle.py's — N hosts x 10 variables, 200 groups four levels deep, every
host in one or two groups. The collection is built and installed from its tarball, as the
tests do; craton-api serves the fleet from SQLite.

Figures (each the median of --runs runs, wall clock):

- plugin, end to end: ``ansible-inventory -i craton.yml --list`` (a new process each run,
  importing Ansible, fetching and reading the bundle, listing);
- plugin, cached: the same with the jsonfile cache warm — one 304, no bundle read;
- extracted bundle: GET the .tgz, extract it, ``ansible-inventory -i <dir>/inventory --list``;
- the plugin's own share: the inventory built in-process (InventoryManager: the request,
  reading the archive, making groups, hosts and variables), without importing Ansible or
  listing; and the bundle's GET alone (the server's part of it);
- Ansible's floor: ``ansible-inventory --list`` of the very same listing (hosts, groups,
  final variables) made in memory by a stand-in plugin that reads it from one JSON file —
  what listing this inventory costs whatever its source: starting, then for every host
  merging its variables (VariableManager.get_vars) and writing them out.

Target (issue 13): 10,000 hosts x 10 variables end to end in <= 3 s.

    python benchmarks/inventory_plugin.py [--hosts 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

from bundle import build_fleet

from craton.api import create_app
from craton.config import DefaultSettings, Settings
from craton.db import migrate
from craton.db.session import Database
from tests.ansible_collection import BIN, PLUGIN, ansible_environment, build_and_install
from tests.integration.test_server import craton_environment, running_api

TARGET_SECONDS = 3.0
FLOOR_PLUGIN = '''
import json
from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.template import trust_as_template

DOCUMENTATION = """
name: craton_floor
short_description: an inventory listing, made again in memory
description: The benchmark's floor.
options:
  plugin: {required: true, choices: [craton_floor]}
  listing: {required: true, type: path}
"""


def trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value


class InventoryModule(BaseInventoryPlugin):
    NAME = "craton_floor"
    trusted_by_default = True

    def verify_file(self, path):
        return path.endswith("floor.yml")

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path)
        self._read_config_data(path)
        with open(self.get_option("listing"), encoding="utf-8") as file:
            listing = json.load(file)
        hostvars = listing.pop("_meta")["hostvars"]
        for group in listing:
            inventory.add_group(group)
        for group, body in listing.items():
            for child in body.get("children", []):
                inventory.add_child(group, inventory.add_group(child))
            for host in body.get("hosts", []):
                inventory.add_host(host, group=group)
        for host, variables in hostvars.items():
            inventory.hosts[host].vars.update(trusted(variables))
'''
BUILD_INVENTORY = """
import sys, time
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
started = time.perf_counter()
inventory = InventoryManager(DataLoader(), sources=[sys.argv[1]])
print(time.perf_counter() - started, len(inventory.hosts))
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr[-3000:]}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        home = work / "server"
        data = home / "data"
        data.mkdir(parents=True)
        db = Database(f"sqlite:///{data / 'craton.db'}")
        migrate.upgrade(db.engine)
        app = create_app(Settings(DEFAULT=DefaultSettings(data_dir=str(data))), database=db)
        started = time.perf_counter()
        region = build_fleet(app.test_client(), args.hosts)
        app.extensions["craton"].close()
        db.dispose()
        print(f"fleet: {args.hosts:,} hosts x 10 variables, 200 groups "
              f"(built in {time.perf_counter() - started:.1f} s)")

        collections = build_and_install(work / "collection")
        env = ansible_environment(collections, work / "ansible",
                                  ANSIBLE_DEPRECATION_WARNINGS="0")
        with running_api(craton_environment(home), home) as server:
            base = f"http://127.0.0.1:{server.port}"
            config = work / "craton.yml"
            config.write_text(json.dumps({"plugin": PLUGIN, "url": base, "region": region}))
            cached = work / "cached.craton.yml"
            cached.write_text(json.dumps({
                "plugin": PLUGIN, "url": base, "region": region, "cache": True,
                "cache_plugin": "ansible.builtin.jsonfile", "cache_timeout": 0,
                "cache_connection": str(work / "cache")}))
            inventory = str(BIN / "ansible-inventory")
            bundle_url = f"{base}/v1/inventory/{region}.tgz?layout=ansible"

            plugins = work / "floor"
            plugins.mkdir()
            (plugins / "craton_floor.py").write_text(FLOOR_PLUGIN)
            floor_env = {**env, "ANSIBLE_INVENTORY_PLUGINS": str(plugins)}
            listing_file = work / "listing.json"
            floor_config = work / "floor.yml"
            floor_config.write_text(json.dumps({"plugin": "craton_floor",
                                                "listing": str(listing_file)}))

            plugin, warm, extracted, share, fetch, floor = [], [], [], [], [], []
            listings: dict[str, str] = {}
            timed([inventory, "-i", str(cached), "--list"], env)  # fills the cache
            for run in range(args.runs):
                elapsed, listings["plugin"] = timed([inventory, "-i", str(config), "--list"],
                                                    env)
                plugin.append(elapsed)
                elapsed, listings["cached"] = timed([inventory, "-i", str(cached), "--list"],
                                                    env)
                warm.append(elapsed)

                started = time.perf_counter()
                with urllib.request.urlopen(bundle_url) as response:
                    body = response.read()
                fetch.append(time.perf_counter() - started)
                target = work / f"bundle-{run}"
                with tarfile.open(fileobj=io.BytesIO(body)) as archive:
                    archive.extractall(target, filter="data")
                elapsed, listings["bundle"] = timed(
                    [inventory, "-i", str(target / "inventory"), "--list"], env)
                extracted.append(time.perf_counter() - started)

                listing_file.write_text(listings["plugin"])
                elapsed, listings["floor"] = timed([inventory, "-i", str(floor_config),
                                                    "--list"], floor_env)
                floor.append(elapsed)

                _, out = timed([sys.executable, "-c", BUILD_INVENTORY, str(config)], env)
                seconds, hosts = out.split()
                assert int(hosts) == args.hosts, out
                share.append(float(seconds))

    same = json.loads(listings["plugin"]) == json.loads(listings["bundle"]) == \
        json.loads(listings["cached"])
    floor_same = _hosts_and_vars(listings["floor"]) == _hosts_and_vars(listings["plugin"])
    end_to_end = statistics.median(plugin)
    print(f"ansible-inventory -i craton.yml --list    {end_to_end:6.2f} s  "
          f"(runs: {', '.join(f'{s:.2f}' for s in plugin)})")
    print(f"  the same, cached (one 304)               {statistics.median(warm):6.2f} s")
    print(f"  the plugin's own share, in-process       {statistics.median(share):6.2f} s  "
          f"(of which the bundle's GET {statistics.median(fetch):.2f} s)")
    print(f"  ansible-inventory's own work             "
          f"{end_to_end - statistics.median(share):6.2f} s")
    print(f"Ansible's floor, the same listing from memory {statistics.median(floor):6.2f} s  "
          f"(runs: {', '.join(f'{s:.2f}' for s in floor)}; same hosts and variables: "
          f"{floor_same})")
    print(f"GET + extract + ansible-inventory -i <bundle>/inventory --list "
          f"{statistics.median(extracted):6.2f} s")
    print(f"listings identical: {same}")
    verdict = "met" if end_to_end <= TARGET_SECONDS else "MISSED"
    if args.hosts != 10_000:
        verdict += " (the target is for 10,000 hosts)"
    print(f"target <= {TARGET_SECONDS:.0f} s end to end: {verdict}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def _hosts_and_vars(listing: str) -> tuple[dict, set]:
    """A listing's hostvars and (group, host) memberships."""
    data = json.loads(listing)
    hostvars = data.pop("_meta")["hostvars"]
    return hostvars, {(group, host) for group, body in data.items()
                      for host in body.get("hosts", [])}


if __name__ == "__main__":
    main()
