"""Hosts the panel reconciles, and the record of each reconcile (Apply)."""
