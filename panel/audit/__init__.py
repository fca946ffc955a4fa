"""Audit trail: who did what to which object, when and from where."""
