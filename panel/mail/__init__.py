"""Mailboxes and mail aliases on mail hosts."""
