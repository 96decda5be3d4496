"""Version 1 of the REST API: one blueprint per resource family."""

from craton.api.v1 import (
    apikeys,
    changes,
    groups,
    hosts,
    inventory,
    jobs,
    references,
    regions,
    secrets,
    tenants,
    whoami,
)

BLUEPRINTS = (tenants.blp, regions.blp, hosts.blp, groups.blp, secrets.blp, references.blp,
              inventory.blp, jobs.blp, apikeys.blp, changes.blp, whoami.blp)
