"""list members and member-editable list settings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import panel.core.db

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    with op.batch_alter_table('mailing_lists', schema=None) as batch_op:
        # Existing lists keep every default: an empty object.
        batch_op.add_column(
            sa.Column('settings', json_type, nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table('mailing_lists', schema=None) as batch_op:
        batch_op.alter_column('settings', server_default=None)

    op.create_table('list_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['mailing_lists.id'], name=op.f('fk_list_members_list_id_mailing_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_list_members')),
    sa.UniqueConstraint('list_id', 'email', 'role', name=op.f('uq_list_members_list_id_email_role'))
    )
    with op.batch_alter_table('list_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_list_members_list_id'), ['list_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('list_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_list_members_list_id'))
    op.drop_table('list_members')
    with op.batch_alter_table('mailing_lists', schema=None) as batch_op:
        batch_op.drop_column('settings')
