"""meetings are recorded unless the operator says not ("ghi hình")

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


def downgrade() -> None:
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.drop_column('record')
