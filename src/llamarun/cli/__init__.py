"""The ``llamarun`` command line."""
