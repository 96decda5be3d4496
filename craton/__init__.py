"""Craton: fleet inventory and Ansible execution."""

__version__ = "0.1.0"
