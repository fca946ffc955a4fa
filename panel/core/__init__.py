"""Shared plumbing: settings, database, errors, auth, validation, pagination."""
