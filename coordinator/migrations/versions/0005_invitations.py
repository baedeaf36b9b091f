"""guests' invitations to one occurrence of a meeting

Revision ID: 0005_invitations
Revises: 0004_session_generation
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_invitations'
down_revision = '0004_session_generation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'invitations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('meeting_id', sa.Integer(), nullable=False),
        sa.Column('scheduled_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('guest_name', sa.String(length=100), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('secret_hash'),
    )
    op.create_index('ix_invitations_meeting_id', 'invitations', ['meeting_id'])
    op.create_index('ix_invitations_code_hash', 'invitations', ['code_hash'])


def downgrade() -> None:
    op.drop_index('ix_invitations_code_hash', table_name='invitations')
    op.drop_index('ix_invitations_meeting_id', table_name='invitations')
    op.drop_table('invitations')
