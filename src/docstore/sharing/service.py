"""Sharing rules: who may share what with whom, for how long, and revoking it at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session

from docstore.audit.service import Action, record
from docstore.changes import service as changes
from docstore.context import Actor
from docstore.db import utcnow
from docstore.documents import service as documents
from docstore.documents.models import Document
from docstore.errors import Conflict, DocstoreError, Forbidden, NotFound, ValidationFailed
from docstore.folders.models import Folder
from docstore.groups.models import Group, GroupMember
from docstore.pagination import cursor_int, page
from docstore.security import hash_password, new_token, token_digest
from docstore.services import for_session as services_for
from docstore.sharing.models import Share
from docstore.sharing.permissions import (
    Grant,
    Level,
    active_share,
    explain,
    get_document_for,
    get_folder_for,
    grantee,
)
from docstore.sharing.runtime import grants_changed
from docstore.sharing.schemas import (
    AccessOut,
    AccessVia,
    LinkOut,
    SharedItem,
    ShareIn,
    ShareOut,
    SharePatch,
)
from docstore.users import repository as user_repo
from docstore.users import verification
from docstore.users.service import normalise_email


@dataclass
class Target:
    """The item a share is on, as its owner sees it."""

    owner_id: int
    document_id: int | None
    folder_id: int | None


def share_out(
    share: Share, token: str | None = None, public_url: str = "", group_name: str | None = None
) -> ShareOut:
    """The API view of a share (the token only when it was just created)."""
    expired = share.expires_at is not None and share.expires_at <= utcnow()
    return ShareOut(
        id=share.id,
        kind=share.kind,  # type: ignore[arg-type]
        document_id=share.document_id,
        folder_id=share.folder_id,
        permission=Level(share.permission).name,  # type: ignore[arg-type]
        expires_at=share.expires_at,
        is_active=share.is_active and not expired,
        user_id=share.shared_with_user_id,
        email=share.shared_with_email,
        group_id=share.group_id,
        group_name=group_name,
        has_password=share.password_hash is not None,
        created_by=share.created_by,
        created_at=share.created_at,
        revoked_at=share.revoked_at,
        token=token,
        url=f"{public_url}/api/v1/links/{token}" if token else None,
    )


def _owned_target(
    db: Session,
    actor: Actor,
    document_id: int | None,
    folder_id: int | None,
    *,
    include_deleted: bool = True,
) -> Target:
    """The item, if the actor owns it: 404 when they cannot see it, 403 when not the owner.

    Sharing is owner-only (API.md "Permissions"), so nobody can pass on more than they hold.
    """
    if (document_id is None) == (folder_id is None):
        raise ValidationFailed("Give exactly one of document_id and folder_id.")
    if document_id is not None:
        doc, _, _ = get_document_for(
            db, actor, document_id, Level.OWNER, for_update=True, include_deleted=include_deleted
        )
        return Target(doc.owner_id, doc.id, None)
    assert folder_id is not None
    folder, _ = get_folder_for(
        db, actor, folder_id, Level.OWNER, for_update=True, include_deleted=include_deleted
    )
    if folder.parent_id is None:
        raise ValidationFailed("The root folder cannot be shared; share a folder inside it.")
    return Target(folder.owner_id, None, folder.id)


def _audit(
    db: Session, actor: Actor, action: Action, share: Share, target: Target, **details: object
) -> None:
    grantee = (
        "link"
        if share.kind == "link"
        else f"group:{share.group_id}"
        if share.group_id is not None
        else share.shared_with_email
        if share.shared_with_user_id is None
        else share.shared_with_user_id
    )
    record(
        db,
        actor,
        action,
        document_id=target.document_id,
        folder_id=target.folder_id,
        share_id=share.id,
        owner_id=target.owner_id,
        details={
            "grantee": grantee,
            "kind": share.kind,
            "permission": Level(share.permission).name,
            "expires_at": share.expires_at.isoformat() if share.expires_at else None,
            **({"group_id": share.group_id} if share.group_id is not None else {}),
            **details,
        },
    )


def _narrows(share: Share, permission: int, expires_at: datetime | None) -> bool:
    """Whether the new terms take anything away (a lower level or an earlier end)."""
    if permission < share.permission:
        return True
    if expires_at is None:
        return False
    return share.expires_at is None or expires_at < share.expires_at


def _item(db: Session, target: Target) -> changes.Item:
    """The shared item, for the change feed."""
    if target.document_id is not None:
        return changes.document_item(db, db.get_one(Document, target.document_id))
    return changes.folder_item(db.get_one(Folder, target.folder_id))


def create(db: Session, actor: Actor, body: ShareIn, public_url: str) -> ShareOut:
    """Share an item the actor owns: with a user, a not-yet-registered email, or a link.

    Sharing with someone who already has a share on the item changes that share. Whoever
    can see the item through it now and could not before gets `access_gained`.
    """
    target = _owned_target(db, actor, body.document_id, body.folder_id, include_deleted=False)
    seen = changes.Visibility.of(db, _item(db, target))
    out = _create(db, actor, body, public_url, target)
    seen.diff(db, actor, seen.item)
    return out


def _create(db: Session, actor: Actor, body: ShareIn, public_url: str, target: Target) -> ShareOut:
    permission = int(Level[body.permission])
    now = utcnow()
    if body.expires_at is not None and body.expires_at <= now:
        raise ValidationFailed("expires_at must be in the future.")
    if body.group_id is not None:
        if body.link or body.email is not None or body.password is not None:
            raise ValidationFailed("Give one of email, group_id or link: true.")
        return _share_with_group(db, actor, target, body.group_id, permission, body.expires_at)
    if body.link == (body.email is not None):
        raise ValidationFailed("Give either an email or link: true.")
    if body.password is not None and not body.link:
        raise ValidationFailed("Only links can have a password.")
    assert actor.user is not None
    if body.link:
        token = new_token()
        share = Share(
            kind="link",
            token_hash=token_digest(token),
            password_hash=hash_password(body.password) if body.password else None,
        )
        _fill(share, target, permission, body.expires_at, actor.user.id, now)
        db.add(share)
        db.flush()
        _audit(db, actor, Action.SHARE, share, target, password=body.password is not None)
        return share_out(share, token, public_url)
    email = normalise_email(str(body.email))
    user = user_repo.by_email(db, email)
    if user is not None and user.id == target.owner_id:
        raise ValidationFailed("You own this item already.")
    if user is not None and not user.email_verified:
        # Registering an address proves nothing: until its account verifies it, the share
        # waits as a pending `email` share, exactly as for an address with no account.
        user = None
    grantee = (
        Share.shared_with_user_id == user.id
        if user is not None
        else and_(Share.shared_with_email == email, Share.shared_with_user_id.is_(None))
    )
    existing = db.scalar(
        select(Share)
        .where(
            grantee,
            Share.kind != "link",
            Share.is_active.is_(True),
            Share.document_id == target.document_id
            if target.document_id is not None
            else Share.folder_id == target.folder_id,
        )
        .order_by(Share.id)
        .limit(1)
    )
    if existing is not None:
        if existing.kind == "user":
            narrows = _narrows(existing, permission, body.expires_at)
            grants_changed(db, target.owner_id, strict=narrows)
        _fill(existing, target, permission, body.expires_at, actor.user.id, now, new=False)
        db.flush()
        _audit(db, actor, Action.SHARE, existing, target, updated=True)
        return share_out(existing)
    share = Share(
        kind="user" if user is not None else "email",
        shared_with_user_id=user.id if user is not None else None,
        shared_with_email=email,
    )
    if user is not None:
        grants_changed(db, target.owner_id, strict=False)
    _fill(share, target, permission, body.expires_at, actor.user.id, now)
    db.add(share)
    db.flush()
    _audit(db, actor, Action.SHARE, share, target)
    if user is None and _invites_by_sharing(db):
        item = (
            db.get_one(Document, target.document_id)
            if target.document_id is not None
            else db.get_one(Folder, target.folder_id)
        )
        verification.send_invitation(db, email, actor.user.name, item.name)
    return share_out(share)


def _invites_by_sharing(db: Session) -> bool:
    """Whether a share to an address with no (verified) account mails an invitation:
    DOCSTORE_SHARING_INVITES, by default as DOCSTORE_OPEN_SIGNUP."""
    svc = services_for(db)
    if svc is None:  # a bare Database (scripts, some tests): the open-sign-up default
        return True
    settings = svc.settings
    return settings.open_signup if settings.sharing_invites is None else settings.sharing_invites


def _share_with_group(
    db: Session,
    actor: Actor,
    target: Target,
    group_id: int,
    permission: int,
    expires_at: datetime | None,
) -> ShareOut:
    """Share with a group the actor is in (404 for any other group): every member gets the
    grant. The group's row lock orders this after (or before) any membership change, so a
    removal always sees this share's owner (sharing/group_grants.py)."""
    assert actor.user is not None
    group = db.scalar(select(Group).where(Group.id == group_id).with_for_update())
    if group is None or db.get(GroupMember, (group.id, actor.user.id)) is None:
        raise NotFound("No such group.")
    now = utcnow()
    existing = db.scalar(
        select(Share)
        .where(
            Share.group_id == group.id,
            Share.is_active.is_(True),
            Share.document_id == target.document_id
            if target.document_id is not None
            else Share.folder_id == target.folder_id,
        )
        .order_by(Share.id)
        .limit(1)
    )
    if existing is not None:
        grants_changed(db, target.owner_id, strict=_narrows(existing, permission, expires_at))
        _fill(existing, target, permission, expires_at, actor.user.id, now, new=False)
        db.flush()
        _audit(db, actor, Action.SHARE, existing, target, updated=True, group_name=group.name)
        return share_out(existing, group_name=group.name)
    grants_changed(db, target.owner_id, strict=False)
    share = Share(kind="group", group_id=group.id)
    _fill(share, target, permission, expires_at, actor.user.id, now)
    db.add(share)
    db.flush()
    _audit(db, actor, Action.SHARE, share, target, group_name=group.name)
    return share_out(share, group_name=group.name)


def _fill(
    share: Share,
    target: Target,
    permission: int,
    expires_at: datetime | None,
    by: int,
    now: datetime,
    *,
    new: bool = True,
) -> None:
    if new:
        share.document_id = target.document_id
        share.folder_id = target.folder_id
        share.created_at = now
        share.is_active = True
    share.permission = permission
    share.expires_at = expires_at
    share.created_by = by
    share.updated_at = now


def _load(db: Session, actor: Actor, share_id: int) -> tuple[Share, Target]:
    """A share the actor may change (the owner of its item), locked after its item: the
    order `create` takes them in, so concurrent changes wait instead of deadlocking."""
    share = db.get(Share, share_id)
    if share is None:
        raise NotFound()
    target = _owned_target(db, actor, share.document_id, share.folder_id)
    db.refresh(share, with_for_update=True)
    return share, target


def update(db: Session, actor: Actor, share_id: int, patch: SharePatch) -> ShareOut:
    """Change a share's level and/or expiry (owner only); a narrowing applies at once."""
    share, target = _load(db, actor, share_id)
    if not share.is_active:
        raise Conflict("This share was revoked; create a new one.")
    permission = int(Level[patch.permission]) if patch.permission else share.permission
    expires_at = patch.expires_at if "expires_at" in patch.model_fields_set else share.expires_at
    changed_expiry = "expires_at" in patch.model_fields_set
    if changed_expiry and expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed("expires_at must be in the future; revoke the share instead.")
    seen = None
    if share.kind in ("user", "group"):
        grants_changed(db, target.owner_id, strict=_narrows(share, permission, expires_at))
        item = _item(db, target)
        if not _in_trash(db, item):
            seen = changes.Visibility.of(db, item)
    level_changed = permission != share.permission
    share.permission = permission
    share.expires_at = expires_at
    if changed_expiry:  # a later expiry is announced again by `changes.share_expiry`
        share.expiry_noticed_at = None
    share.updated_at = utcnow()
    db.flush()
    _audit(db, actor, Action.SHARE, share, target, updated=True)
    if seen is not None:
        # An expired share given a new expiry grants again: `access_gained`.
        seen.diff(db, actor, seen.item)
        if level_changed:
            changes.share_level_changed(db, actor, seen.item, share)
    return share_out(share)


def _in_trash(db: Session, item: changes.Item) -> bool:
    row = db.get_one(Document, item.id) if item.document_id else db.get_one(Folder, item.id)
    return bool(row.is_deleted)


def revoke(db: Session, actor: Actor, share_id: int) -> None:
    """Revoke a share (owner only): from the next request on, in every process."""
    share, target = _load(db, actor, share_id)
    if share.kind in ("user", "group"):
        # Also for a share revoked before: repeating the request re-invalidates the caches.
        grants_changed(db, target.owner_id, strict=True)
    if not share.is_active:
        return
    item = _item(db, target)
    seen = None if _in_trash(db, item) else changes.Visibility.of(db, item)
    now = utcnow()
    share.is_active = False
    share.revoked_at = now
    share.updated_at = now
    db.flush()
    _audit(db, actor, Action.UNSHARE, share, target)
    if seen is not None:  # who no longer sees the item gets `access_lost`
        seen.diff(db, actor, item)


def list_for_item(
    db: Session,
    actor: Actor,
    *,
    document_id: int | None = None,
    folder_id: int | None = None,
    limit: int,
    cursor: str | None,
) -> tuple[list[ShareOut], str | None]:
    """The shares on an item, oldest first (owner only); revoked ones are left out."""
    target = _owned_target(db, actor, document_id, folder_id)
    stmt = select(Share).where(Share.is_active.is_(True))
    if target.document_id is not None:
        stmt = stmt.where(Share.document_id == target.document_id)
    else:
        stmt = stmt.where(Share.folder_id == target.folder_id)
    after_id = cursor_int(cursor, "i")
    if after_id is not None:
        stmt = stmt.where(Share.id > after_id)
    rows = list(db.scalars(stmt.order_by(Share.id).limit(limit + 1)))
    shown, next_cursor = page(rows, limit, lambda s: {"i": s.id})
    group_ids = {s.group_id for s in shown if s.group_id is not None}
    names: dict[int, str] = {}
    if group_ids:
        named = select(Group.id, Group.name).where(Group.id.in_(group_ids))
        names = {gid: name for gid, name in db.execute(named)}
    return [
        share_out(s, group_name=names.get(s.group_id) if s.group_id else None) for s in shown
    ], next_cursor


def shared_children(db: Session, actor: Actor, folder_id: int) -> dict[str, list[int]]:
    """Which direct children of a folder the caller owns carry an active share (nothing for
    a folder the caller does not own or cannot see: only the owner sees who has access)."""
    none: dict[str, list[int]] = {"folders": [], "documents": []}
    if actor.user is None:
        return none
    try:
        folder, _ = get_folder_for(db, actor, folder_id, Level.OWNER)
    except DocstoreError:
        return none
    live = active_share(utcnow())
    docs = (
        select(Share.document_id)
        .join(Document, Document.id == Share.document_id)
        .where(live, Document.folder_id == folder.id, Document.is_deleted == false())
    )
    folders = (
        select(Share.folder_id)
        .join(Folder, Folder.id == Share.folder_id)
        .where(live, Folder.parent_id == folder.id, Folder.is_deleted == false())
    )
    return {
        "folders": sorted({i for i in db.scalars(folders) if i is not None}),
        "documents": sorted({i for i in db.scalars(docs) if i is not None}),
    }


def shared_with_me(
    db: Session, actor: Actor, limit: int, cursor: str | None
) -> tuple[list[SharedItem], str | None]:
    """Live documents and folders shared with the caller by an active share, newest first."""
    assert actor.user is not None
    stmt = (
        select(Share, Document, Folder)
        .outerjoin(Document, Share.document_id == Document.id)
        .outerjoin(Folder, Share.folder_id == Folder.id)
        .where(
            grantee(actor.user.id),
            active_share(utcnow()),
            or_(
                and_(Document.is_deleted == false(), Document.owner_id != actor.user.id),
                and_(Folder.is_deleted == false(), Folder.owner_id != actor.user.id),
            ),
        )
    )
    before_id = cursor_int(cursor, "i")
    if before_id is not None:
        stmt = stmt.where(Share.id < before_id)
    rows = list(db.execute(stmt.order_by(Share.id.desc()).limit(limit + 1)).all())
    shown, next_cursor = page(rows, limit, lambda row: {"i": row[0].id})
    items: list[SharedItem] = []
    for share, doc, folder in shown:
        common = {
            "permission": Level(share.permission).name,
            "share_id": share.id,
            "shared_by": share.created_by,
            "shared_at": share.created_at,
            "expires_at": share.expires_at,
            "group_id": share.group_id,
        }
        if doc is not None:
            items.append(
                SharedItem(
                    kind="document",
                    id=doc.id,
                    name=doc.name,
                    owner_id=doc.owner_id,
                    parent_folder_id=doc.folder_id,
                    mime_type=doc.mime_type,
                    **common,  # type: ignore[arg-type]
                )
            )
        elif folder is not None:
            items.append(
                SharedItem(
                    kind="folder",
                    id=folder.id,
                    name=folder.name,
                    owner_id=folder.owner_id,
                    parent_folder_id=folder.parent_id,
                    **common,  # type: ignore[arg-type]
                )
            )
    return items, next_cursor


def access_out(user_id: int | None, level: Level, via: list[Grant]) -> AccessOut:
    """The API view of an explanation."""
    return AccessOut(
        user_id=user_id,
        permission=level.name,
        via=[
            AccessVia(
                kind=g.kind,  # type: ignore[arg-type]
                share_id=g.share_id,
                folder_id=g.folder_id,
                group_id=g.group_id,
                group_name=g.group_name,
                permission=g.permission.name,
            )
            for g in via
        ],
    )


def access(db: Session, actor: Actor, document_id: int, user_id: int | None) -> AccessOut:
    """Why a user (or the link the actor holds) has their access to a document; only the
    owner may ask about others."""
    doc, folder, level = get_document_for(db, actor, document_id, Level.VIEW)
    who = actor.user_id if user_id is None else user_id
    if who != actor.user_id and level != Level.OWNER:
        raise Forbidden("Only the owner can see why someone else has access.")
    found, via = explain(db, actor, who, doc.owner_id, folder.path, doc.id)
    return access_out(who, found, via)


def open_document_link(db: Session, actor: Actor) -> LinkOut:
    """What a document link shows: the document (a VIEW in the audit log) and the access."""
    link = actor.link
    assert link is not None and link.document_id is not None
    doc = documents.get(db, actor, link.document_id)
    return LinkOut(
        kind="document",
        permission=Level(link.permission).name,  # type: ignore[arg-type]
        expires_at=link.expires_at,
        document=doc,
        access=access(db, actor, link.document_id, None),
    )
