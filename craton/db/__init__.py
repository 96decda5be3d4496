"""Persistence: the typed models, engines and sessions, tenant scoping and migrations."""
