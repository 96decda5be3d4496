"""Names in a bundle's hosts.yml are YAML double-quoted scalars: every name reads back as
itself through Ansible's own YAML loader, whatever its characters."""

from __future__ import annotations

import pytest
import yaml

from craton.inventory.layouts import yaml_quoted


@pytest.mark.parametrize("text", [
    "web", "nova-api", "1e3", "true", "null", "~", "yes", "2001-12-14", "12:30:00", "<<",
    "caf\u00e9", "\u8ba1\u7b97", "g\U0001f600", "\U0010ffff", 'a"b', "a\\b", "a'b", "#x",
    "- x", ": x", "{{ x }}", "a\nb", "a\tb", "a\x00b", "a\x7fb", "a\x85b", "a\x9fb",
    "a\u2028b", "a\u2029b", "\ufeffx", "\ufffe", " x ", "",
], ids=ascii)
def test_names_read_back_as_written(text: str) -> None:
    from ansible.parsing.yaml.loader import AnsibleLoader

    quoted = yaml_quoted(text)
    assert yaml.load(quoted, Loader=AnsibleLoader) == text
    assert yaml.load(f"{quoted}: 1\n", Loader=AnsibleLoader) == {text: 1}
