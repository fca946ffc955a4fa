"""Konbit: a multi-server web hosting control panel for cooperative hosting providers."""

__version__ = "0.1.0"
