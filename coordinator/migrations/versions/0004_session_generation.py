"""web sessions that can be ended: a per-user session generation

Revision ID: 0004_session_generation
Revises: 0003_readiness
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa


revision = '0004_session_generation'
down_revision = '0003_readiness'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing users get an empty generation: their sessions from before end, they sign in once more.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.String(length=32), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
