"""Alembic owns the schema: models and migrations never drift, upgrades keep data."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from panel.core.migrate import alembic_config, check, upgrade
from tests.conftest import postgres_database


def test_models_match_migrations(db_url: str) -> None:
    check(db_url)  # raises if `alembic revision --autogenerate` would find anything


def test_upgrading_step_by_step_keeps_data(tmp_path: object) -> None:
    with postgres_database("konbit_mig") as pg_url:
        for url in (f"sqlite:///{tmp_path}/mig.sqlite3", pg_url):
            _upgrade_keeps_data(url)


def _upgrade_keeps_data(url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    seeded = False
    for rev in revisions:
        upgrade(url, rev)
        if not seeded:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO accounts (slug, name, email, status, quotas, created_at, "
                        "updated_at, version) VALUES ('keep', 'Keep', 'k@keep.test', 'active', "
                        "'{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
                    )
                )
            seeded = True
    upgrade(url)  # again: a no-op that must not touch data
    with engine.connect() as conn:
        assert conn.execute(text("SELECT slug FROM accounts")).scalar_one() == "keep"
    check(url)
    engine.dispose()
