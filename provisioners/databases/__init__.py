"""Database hosts: MariaDB (``mariadb``) and PostgreSQL (``postgresql``) databases, users
and grants, what both engines share (``common``), and the operations the panel's tasks
use on them (``operations``)."""

from provisioners.databases.common import (
    ARCHIVE_DIR,
    ENGINES,
    PER_OBJECT_STEPS,
    DbSettings,
    HostDatabases,
    mysql_account,
    mysql_grant_db,
    mysql_ident,
    mysql_str,
    parse_facts,
    pg_ident,
    pg_owner,
    pg_str,
    serves,
)
from provisioners.databases.mariadb import MariaDB
from provisioners.databases.operations import MariaDBOperations, PostgreSQLOperations
from provisioners.databases.postgresql import PostgreSQL

__all__ = [
    "ARCHIVE_DIR",
    "ENGINES",
    "PER_OBJECT_STEPS",
    "DbSettings",
    "HostDatabases",
    "MariaDB",
    "MariaDBOperations",
    "PostgreSQL",
    "PostgreSQLOperations",
    "mysql_account",
    "mysql_grant_db",
    "mysql_ident",
    "mysql_str",
    "parse_facts",
    "pg_ident",
    "pg_owner",
    "pg_str",
    "serves",
]
