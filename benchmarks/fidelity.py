"""Check many random fleets of nasty values and names against Ansible's own view of them: what
tests/integration/test_fidelity.py does for 200, for as many as asked (see tests/fidelity.py).

For each fleet, built through the API on SQLite: Ansible's view (``ansible-inventory --list``
by Ansible's own code, in helper processes) of the fleet written by hand as an inventory,
against its view of layout=ansible, layout=hosts and the .json, against the API's resolved
variables of every host, and (unless --no-import) against its view of the bundle of that
inventory imported into a region of its own. Prints the fleets checked, the disagreements by
kind (with the first few in full) and the time.

    python benchmarks/fidelity.py                       # 2,000 fleets, seed 1
    python benchmarks/fidelity.py --fleets 500 --seed 7
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from craton.api import create_app
from craton.db import migrate
from craton.db.session import Database
from tests.conftest import Client, make_settings
from tests.fidelity import ANSIBLE_ENV, Lister, check_fleets, fleet_of, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleets", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=5, help="disagreements to print in full")
    parser.add_argument("--helpers", type=int, default=2, help="Ansible helper processes")
    parser.add_argument("--no-import", dest="imports", action="store_false",
                        help="skip importing each fleet's reference inventory")
    args = parser.parse_args()
    # The import reads inventories with Ansible in this process: the helpers' settings here
    # too (before Ansible reads its configuration), so its warnings do not bury the figures.
    os.environ.update(ANSIBLE_ENV)

    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        db = Database(f"sqlite:///{tmp / 'craton.db'}")
        migrate.upgrade(db.engine)
        client = Client(create_app(make_settings(tmp), database=db).test_client())
        listers = [Lister(tmp / f"ansible-{index}.log") for index in range(args.helpers)]
        found = []
        failing = 0
        started = time.perf_counter()
        try:
            fleets = ((index, fleet_of(args.seed, index)) for index in range(args.fleets))
            for index, fleet, problems in check_fleets(client, listers, fleets, tmp,
                                                       import_every=int(args.imports)):
                if problems:
                    failing += 1
                    found += [(index, problem) for problem in problems]
                    if failing <= args.show:
                        print(f"fleet {index}: {fleet}")
                        for problem in problems[:6]:
                            print(f"  {problem.kind}: {problem.detail}")
                if (index + 1) % 250 == 0:
                    print(f"  ... {index + 1} fleets, {failing} disagreeing, "
                          f"{time.perf_counter() - started:.0f} s", flush=True)
        finally:
            for lister in listers:
                lister.close()
            db.dispose()
        elapsed = time.perf_counter() - started
    print(f"fleets checked: {args.fleets:,} (seed {args.seed}); fleets disagreeing: {failing}")
    print(f"disagreements by kind: {summarize(p for _, p in found) or 'none'}")
    print(f"time: {elapsed:.1f} s ({elapsed / max(args.fleets, 1) * 1000:.0f} ms a fleet)")


if __name__ == "__main__":
    main()
