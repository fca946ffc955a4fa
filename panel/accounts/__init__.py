"""Accounts (member organizations), users, memberships and API tokens."""
