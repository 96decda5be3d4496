"""The ``craton`` command."""
