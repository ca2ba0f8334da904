"""accounts: mail outbox, proven email addresses and single-use account links

`users.email_verified`: existing administrators count as verified (they were set up by the
operator: `DOCSTORE_ADMIN_EMAIL` or `docstore user create --admin`); every other existing
account starts unverified, as a new sign-up does, and proves its address with a link it
asks for (`POST /auth/verify-email/resend`, or the notice in the web UI). Until then pending
shares to it wait, exactly as for a new account: an address registered before this revision
was never proven either. Shares already given to those accounts stay as they are.

`account_tokens`: mailed single-use links (verify, invite, reset, email_change), SHA-256 only.
`mail_outbox`: messages written in the transaction of their event, sent by `mail.deliver`.

Revision ID: 0006_mail_and_verification
Revises: 0005_audit_keyed_seals
Create Date: 2026-12-07 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docstore.db

revision: str = "0006_mail_and_verification"
down_revision: str | None = "0005_audit_keyed_seals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    users = sa.table("users", sa.column("is_admin", sa.Boolean()), sa.column("email_verified"))
    op.execute(users.update().where(users.c.is_admin.is_(True)).values(email_verified=True))

    op.create_table(
        "account_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", docstore.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_account_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
    )
    with op.batch_alter_table("account_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_account_tokens_email", ["email"], unique=False)
        batch_op.create_index("ix_account_tokens_user_id", ["user_id"], unique=False)

    op.create_table(
        "mail_outbox",
        sa.Column("id", ID, nullable=False),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("delivered_to", sa.String(length=1000), nullable=True),
        sa.Column("created_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", docstore.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
    )
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mail_outbox_status_next", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_outbox_status_next")
    op.drop_table("mail_outbox")
    with op.batch_alter_table("account_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_account_tokens_user_id")
        batch_op.drop_index("ix_account_tokens_email")
    op.drop_table("account_tokens")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email_verified")
