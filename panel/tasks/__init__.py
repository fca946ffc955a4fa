"""Imperative jobs (backup, restore, clone, migrate) with status, progress and log."""
