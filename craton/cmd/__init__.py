"""Console scripts: craton-api, craton-manage, craton-worker."""

from __future__ import annotations

import sys

from craton.config import Settings
from craton.jobs import sandbox


def sandbox_ready(settings: Settings, program: str) -> bool:
    """Whether jobs may run as configured: the sandbox works, or is off (which warns loudly).
    When it is on but unusable, ``program`` says why on stderr and must not start."""
    if settings.jobs.sandbox:
        try:
            sandbox.check_available()
        except sandbox.SandboxUnavailable as error:
            print(f"{program}: {error}", file=sys.stderr)
            return False
    sandbox.warn_if_off(settings.jobs.sandbox)
    return True
