"""Alembic environment: the panel's models are the target; the URL comes from settings."""

from __future__ import annotations

from alembic import context

import panel.models  # noqa: F401
from panel.core.db import Base, make_engine
from panel.core.settings import load_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    return url or load_settings().effective_database_url


def run_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = make_engine(_url())
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _include_name(name: str | None, type_: str, _parent: object) -> bool:
    # The queue's huey_* tables belong to panel.worker.queue, not to the panel schema.
    return not (type_ == "table" and name is not None and name.startswith("huey_"))


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
