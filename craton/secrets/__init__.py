"""Secrets: blobs kept for hosts (SSH keys, certificates), encrypted at rest.

Content leaves the store only through ``reveal_secret`` (an explicit API call by a caller whose
roles allow it) and in the bundles built for such callers, their jobs' included — never into
logs, events, errors or list responses.
"""
