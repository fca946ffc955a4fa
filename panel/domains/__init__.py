"""Domains owned by accounts: the fence that keeps one account off another's names."""
