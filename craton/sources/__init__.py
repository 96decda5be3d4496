"""Fetch what Craton does not store itself: referenced variable files (git, http(s), file) and,
for jobs, playbook sources — with timeouts, size limits and a cache keyed by commit or digest."""
