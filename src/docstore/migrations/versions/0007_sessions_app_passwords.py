"""users: sessions and app passwords on api_tokens

A token gets a `name` (app passwords), the client's `ip_address` at issue and
`last_used_at` (refreshed at most once a minute). App passwords (`kind = 'app_password'`)
do not expire until revoked, so `expires_at` becomes nullable. Existing tokens keep their
kind and expiry; their last use is unknown (NULL) until the next request.

Revision ID: 0007_sessions_app_passwords
Revises: 0006_mail_and_verification
Create Date: 2026-12-07 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docstore.db

revision: str = "0007_sessions_app_passwords"
down_revision: str | None = "0006_mail_and_verification"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("last_used_at", docstore.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("ip_address", sa.String(length=64), nullable=True))
        batch_op.alter_column(
            "expires_at", existing_type=docstore.db.UTCDateTime(timezone=True), nullable=True
        )


def downgrade() -> None:
    # Tokens without an expiry (app passwords) cannot be kept under the old schema.
    op.execute("DELETE FROM api_tokens WHERE expires_at IS NULL")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column(
            "expires_at", existing_type=docstore.db.UTCDateTime(timezone=True), nullable=False
        )
        batch_op.drop_column("ip_address")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("name")
