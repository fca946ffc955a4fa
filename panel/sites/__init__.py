"""Websites: vhosts on web hosts."""
