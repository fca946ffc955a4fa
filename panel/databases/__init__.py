"""Databases and database users on MariaDB and PostgreSQL hosts."""
