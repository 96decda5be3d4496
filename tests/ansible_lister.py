"""``ansible-inventory --list``, run by Ansible's own command class in one long-lived process.

The fidelity tests hand Ansible hundreds of inventories; the command costs about a second each
(most of it starting Python, importing Ansible and loading its plugins), this some tens of
milliseconds. Each request is
a JSON list of inventory sources on a line of stdin; each answer a JSON line on stdout,
``{"output": <what ansible-inventory --list writes>}`` or ``{"error": <why it failed>}``.

Nothing here re-implements Ansible: every request runs ``ansible.cli.inventory.InventoryCLI``
— argument parsing, ``_play_prereqs`` (DataLoader, InventoryManager, VariableManager),
``json_inventory`` and its encoder — as the ``ansible-inventory`` script does, with
``--output`` so the listing lands in a file rather than among Ansible's messages. Ansible's
command-line code expects one run per process (its vault secrets context, for one, may be
set once, its command-line arguments are a singleton), so each request runs in a child
forked from this process once it has imported Ansible and loaded its plugins (see
:func:`warm_up`): a fresh process in all but the time it takes.
tests/integration/test_fidelity.py checks the listings against the real command.

Run as a script (``python tests/ansible_lister.py``), with the environment the command would
have; it imports nothing from Craton or the tests.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from typing import Any


def list_inventory(sources: list[str]) -> dict[str, Any]:
    """What ``ansible-inventory --list -i SOURCE…`` writes, or why it failed."""
    from ansible.cli.inventory import InventoryCLI

    with tempfile.TemporaryDirectory() as scratch:
        output = os.path.join(scratch, "list.json")
        args = ["ansible-inventory", "--list", "--output", output]
        for source in sources:
            args += ["-i", source]
        try:
            InventoryCLI(args).run()
            code: Any = "returned without exiting"
        except SystemExit as done:
            code = done.code
        except Exception as error:  # what InventoryCLI.cli_executor reports and exits on
            return {"error": f"{type(error).__name__}: {error}"}
        if code != 0:
            return {"error": f"ansible-inventory exited {code}"}
        with open(output, encoding="utf-8") as listing:
            return {"output": listing.read()}


def in_child(sources: list[str]) -> dict[str, Any]:
    """:func:`list_inventory` in a forked child, whose state goes when it ends."""
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reading)
        try:
            answer = json.dumps(list_inventory(sources)).encode()
        except BaseException as error:
            answer = json.dumps({"error": f"{type(error).__name__}: {error}"}).encode()
        with os.fdopen(writing, "wb") as pipe:
            pipe.write(answer)
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not answer:
        return {"error": f"the child listing {sources} ended with status {status}"}
    return json.loads(answer)


def warm_up() -> None:
    """Do once, here, what every child would otherwise do first: import the command and load
    the inventory and vars plugins (with their option definitions). ``InventoryCLI.run``
    calls ``init_plugin_loader`` again in each child; Ansible then keeps this configuration
    (the same: ansible-inventory has no --collections-path) and warns, which is silenced."""
    import ansible.cli.inventory  # noqa: F401
    from ansible import constants
    from ansible.plugins.loader import init_plugin_loader, inventory_loader
    from ansible.vars.plugins import _prime_vars_loader

    init_plugin_loader()
    for name in constants.INVENTORY_ENABLED:
        inventory_loader.get(name)
    _prime_vars_loader()
    warnings.filterwarnings("ignore", message="AnsibleCollectionFinder has already been")


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever Ansible prints goes to stderr, never among the answers
    warm_up()
    for line in sys.stdin:
        answers.write(json.dumps(in_child(json.loads(line))) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
