"""Every model, imported in one place so metadata (and Alembic) sees the whole schema."""

from docstore.audit.models import AuditCheckpoint, AuditLog
from docstore.changes.models import Change
from docstore.comments.models import Comment
from docstore.db import Base
from docstore.documents.dav_state import DavLock, DavProperty
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.folders.models import Folder
from docstore.groups.models import Group, GroupMember
from docstore.mail.models import OutboxMail
from docstore.retention.models import JobLease, JobRunRecord
from docstore.search.models import SearchText
from docstore.sharing.models import Share
from docstore.storage.inline import InlineObject
from docstore.uploads.models import UploadSession
from docstore.users.models import AccountToken, ApiToken, Plan, User
from docstore.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "AccountToken",
    "ApiToken",
    "AuditCheckpoint",
    "AuditLog",
    "Base",
    "Blob",
    "Change",
    "Comment",
    "DavLock",
    "DavProperty",
    "Document",
    "DocumentVersion",
    "Folder",
    "Group",
    "GroupMember",
    "InlineObject",
    "JobLease",
    "JobRunRecord",
    "OutboxMail",
    "Plan",
    "SearchText",
    "Share",
    "UploadSession",
    "User",
    "Webhook",
    "WebhookDelivery",
]
