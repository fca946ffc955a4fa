"""The background worker: Huey tasks whose queue lives in the panel's own database."""
