"""Jobs: run a playbook over a selection of a region with TaskFlow and ansible-runner, record
every event, and report per-host results."""
