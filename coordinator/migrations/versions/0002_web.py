"""web pages: users, presence events, last self-test

Revision ID: 0002_web
Revises: 0001
Create Date: 2026-11-26
"""

from alembic import op
import sqlalchemy as sa


revision = '0002_web'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('presence_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('up', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('presence_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_presence_events_room_id'), ['room_id'], unique=False)

    op.create_table('self_tests',
    sa.Column('room_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('room_id')
    )


def downgrade() -> None:
    op.drop_table('self_tests')
    with op.batch_alter_table('presence_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_presence_events_room_id'))

    op.drop_table('presence_events')
    op.drop_table('users')
