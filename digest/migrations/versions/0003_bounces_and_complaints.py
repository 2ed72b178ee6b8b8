"""Bounces and complaints that arrive after sending: soft bounce and complaint counts, and one row per
processed report (a DSN, an ARF report, a mailto unsubscribe, a service's webhook event).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("soft_bounces", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("complaints", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "mail_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_mail_events_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_mail_events_issue_id_issues"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name=op.f("fk_mail_events_delivery_id_deliveries"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_events")),
        sa.UniqueConstraint("key", name=op.f("uq_mail_events_key")),
    )
    with op.batch_alter_table("mail_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mail_events_issue_id_kind"), ["issue_id", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mail_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_events_issue_id_kind"))
    op.drop_table("mail_events")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("complaints")
        batch_op.drop_column("soft_bounces")
