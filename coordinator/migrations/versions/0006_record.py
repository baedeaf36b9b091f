"""recording and minutes: meetings are recorded unless the operator says not ("ghi hình"); an occurrence
keeps the rooms it invited, and the floor and hands as they went

Revision ID: 0006_record
Revises: 0005_invitations
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0006_record'
down_revision = '0005_invitations'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('record', sa.Boolean(), server_default=sa.true(), nullable=False))
    with op.batch_alter_table('occurrences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invited_rooms', sa.JSON(), server_default='[]', nullable=False))
    op.create_table(
        'meeting_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('occurrence_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('participant', sa.String(length=65), nullable=True),
        sa.ForeignKeyConstraint(['occurrence_id'], ['occurrences.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_meeting_events_occurrence_id', 'meeting_events', ['occurrence_id'])


def downgrade() -> None:
    op.drop_index('ix_meeting_events_occurrence_id', table_name='meeting_events')
    op.drop_table('meeting_events')
    with op.batch_alter_table('occurrences', schema=None) as batch_op:
        batch_op.drop_column('invited_rooms')
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.drop_column('record')
