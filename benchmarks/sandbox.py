"""What the job sandbox costs per ansible-playbook start: the same one-host, one-task run
through Craton's runner with and without bubblewrap, interleaved, in the same process.

Target (issue 9): the sandbox adds at most 0.3 s per ansible-playbook start (median).

    python benchmarks/sandbox.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from craton.jobs.events import Redactor
from craton.jobs.runner import run_playbook
from craton.jobs.sandbox import Sandbox

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: one module on the host
      ansible.builtin.command: "true"
      changed_when: false
"""


def one_run(root: Path, index: int, sandbox: Sandbox | None) -> float:
    private = root / f"run-{index}"
    (private / "inventory").mkdir(parents=True)
    (private / "inventory" / "hosts.yml").write_text(
        "all:\n  hosts:\n    h1:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n")
    project = root / f"project-{index}"
    project.mkdir()
    (project / "play.yml").write_text(PLAYBOOK)
    started = time.perf_counter()
    outcome = run_playbook(
        private, project, "play.yml", forks=1, check=False, diff=False, extra_vars={},
        host_key_checking=False, on_event=lambda *_: None, on_host=None,
        cancelled=lambda: False, redactor=Redactor(), mark=f"bench-sandbox-{index}",
        sandbox=sandbox)
    took = time.perf_counter() - started
    assert outcome.hosts["h1"].status.value == "ok", outcome
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    plain: list[float] = []
    boxed: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one_run(root, 0, None)  # warm the file cache for both
        for index in range(1, args.runs + 1):
            plain.append(one_run(root, 2 * index, None))
            boxed.append(one_run(root, 2 * index + 1, Sandbox()))
    without, within = statistics.median(plain), statistics.median(boxed)
    print(f"ansible-playbook start, one host, one task ({args.runs} interleaved runs each)")
    print(f"  unconfined  median {without:.3f} s  (min {min(plain):.3f}, max {max(plain):.3f})")
    print(f"  sandboxed   median {within:.3f} s  (min {min(boxed):.3f}, max {max(boxed):.3f})")
    print(f"  sandbox cost per start: {within - without:+.3f} s (target <= 0.300 s)")


if __name__ == "__main__":
    main()
