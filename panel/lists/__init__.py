"""Mailing lists on lists hosts."""
