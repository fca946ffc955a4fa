"""The ``konbit`` command line."""
