"""groups: named sets of users, managed by their managers, as share targets

`groups` and `group_members` (one row per member; managers have `is_manager`), and
`shares.group_id` for shares of kind "group": every member has the grant. Existing shares
name no group.

Revision ID: 0008_groups
Revises: 0007_sessions_app_passwords
Create Date: 2026-12-07 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import docstore.db

revision: str = "0008_groups"
down_revision: str | None = "0007_sessions_app_passwords"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_by", _ID, nullable=True),
        sa.Column("created_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_groups_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("is_manager", sa.Boolean(), nullable=False),
        sa.Column("added_at", docstore.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_members_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_group_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.create_index("ix_group_members_user_group", ["user_id", "group_id"], unique=False)
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", _ID, nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_shares_group_id_groups"), "groups", ["group_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_check_constraint(
            op.f("ck_shares_group_kind"), "(kind = 'group') = (group_id IS NOT NULL)"
        )
        batch_op.create_check_constraint(
            op.f("ck_shares_group_only_grantee"),
            "group_id IS NULL OR (shared_with_user_id IS NULL AND shared_with_email IS NULL)",
        )
        batch_op.create_index("ix_shares_group_document", ["group_id", "document_id"], unique=False)
        batch_op.create_index("ix_shares_group_folder", ["group_id", "folder_id"], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM shares WHERE kind = 'group'")
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_index("ix_shares_group_folder")
        batch_op.drop_index("ix_shares_group_document")
        batch_op.drop_constraint(op.f("ck_shares_group_only_grantee"), type_="check")
        batch_op.drop_constraint(op.f("ck_shares_group_kind"), type_="check")
        batch_op.drop_constraint(op.f("fk_shares_group_id_groups"), type_="foreignkey")
        batch_op.drop_column("group_id")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_index("ix_group_members_user_group")
    op.drop_table("group_members")
    op.drop_table("groups")
