"""readiness checks before meetings

Revision ID: 0002_readiness
Revises: 0001
Create Date: 2026-11-26
"""

from alembic import op
import sqlalchemy as sa


revision = '0002_readiness'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('readiness_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('scheduled_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('room_id', sa.String(length=32), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('failed_check', sa.String(length=32), nullable=True),
    sa.Column('checks', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('readiness_checks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_readiness_checks_meeting_id'), ['meeting_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('readiness_checks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_readiness_checks_meeting_id'))
    op.drop_table('readiness_checks')
