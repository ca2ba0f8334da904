"""Failed-login throttling: the brute-force protection in front of `service.login`.

Counted in the shared cache (`docstore.throttle`; Redis when configured, so every server
process sees the same counts), and checked *before* the password is: a refused attempt costs
no argon2 and no database round trip.

- Per client address: at most `login_max_failures_per_address` failures within
  `login_address_window_seconds`; past that, 429 for that address until the window ends.
- Per account (by normalised email, whether or not it has an account, so the answer tells
  nothing about which emails exist): `login_free_failures_per_account` failures are free;
  each further one blocks the account for a wait that doubles, from
  `login_account_backoff_seconds` up to `login_account_backoff_max_seconds`. Once in that
  regime, only one attempt at a time is checked. An attacker therefore gets a few guesses
  an hour, and the owner waits at most the cap after the attack stops. A success resets the
  account's count.

Attempts are counted before the password is checked and given back when it was right, so
parallel bursts meet the limits too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy.orm import Session

from docstore import throttle
from docstore.audit.service import Action, record_failed_attempt
from docstore.config import Settings
from docstore.context import Actor
from docstore.db import Database
from docstore.errors import Forbidden, RateLimited
from docstore.services import Services
from docstore.throttle import Throttle, backoff
from docstore.users import service, verification
from docstore.users.models import User
from docstore.users.schemas import LoginIn, RegisterIn, TokenOut, UserOut

# How long the one attempt allowed at a time on an account in back-off may hold its slot.
BUSY_SECONDS = 60


@dataclass(frozen=True)
class LoginLimits:
    """The login limits from the settings."""

    per_address: int
    address_window: int
    free_per_account: int
    backoff: float
    backoff_max: float
    account_window: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimits:
        """The limits configured by the DOCSTORE_LOGIN_* settings."""
        return cls(
            per_address=settings.login_max_failures_per_address,
            address_window=settings.login_address_window_seconds,
            free_per_account=settings.login_free_failures_per_account,
            backoff=settings.login_account_backoff_seconds,
            backoff_max=settings.login_account_backoff_max_seconds,
            account_window=settings.login_account_window_seconds,
        )

    def account_wait(self, failures: int) -> float:
        """How long an account stays blocked after its `failures`-th failure."""
        return backoff(failures, self.free_per_account, self.backoff, self.backoff_max)


class LoginGuard:
    """One login attempt's passage through the limits: `admit`, then exactly one of
    `failed`, `succeeded` or `cancel`."""

    def __init__(self, throttle: Throttle, limits: LoginLimits, email: str, ip: str | None):
        self.throttle = throttle
        self.limits = limits
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        self.account = f"login:acct:{account}"
        self.account_block = f"login:acct-block:{account}"
        self.account_busy = f"login:acct-busy:{account}"
        self.address = f"login:ip:{ip}" if ip else None
        self.address_block = f"login:ip-block:{ip}"
        self.failures = 0
        self.busy = False

    def admit(self) -> None:
        """Count the attempt, or refuse it with 429 and Retry-After."""
        blocks = [self.address_block, self.account_block] if self.address else [self.account_block]
        wait = self.throttle.blocked_for(blocks)
        if wait > 0:
            raise RateLimited("Too many failed sign-ins; try again later.", retry_after=wait)
        limits = self.limits
        self.failures = self.throttle.count(self.account, limits.account_window)
        if self.failures > limits.free_per_account:
            self.busy = True
            if self.throttle.count(self.account_busy, BUSY_SECONDS) > 1:
                self.cancel(address=False)
                raise RateLimited("A sign-in to this account is being checked.", retry_after=1)
        address = self.address
        if address and self.throttle.count(address, limits.address_window) > limits.per_address:
            self.throttle.block(self.address_block, limits.address_window)
            self.cancel(address=False)
            raise RateLimited(
                "Too many failed sign-ins from this address; try again later.",
                retry_after=limits.address_window,
            )

    def failed(self) -> None:
        """The password was wrong: the account waits, longer with every failure."""
        wait = self.limits.account_wait(self.failures)
        if wait > 0:
            self.throttle.block(self.account_block, wait)
        self._release()

    def succeeded(self) -> None:
        """The password was right: the account's failures are forgotten, and the attempt
        no longer counts against the address."""
        self.throttle.clear([self.account, self.account_block])
        if self.address is not None:
            self.throttle.count(self.address, self.limits.address_window, -1)
        self._release()

    def cancel(self, *, address: bool = True) -> None:
        """The attempt was not decided (refused, or the server failed): give it back."""
        self.throttle.count(self.account, self.limits.account_window, -1)
        if address and self.address is not None:
            self.throttle.count(self.address, self.limits.address_window, -1)
        self._release()

    def _release(self) -> None:
        if self.busy:
            self.busy = False
            self.throttle.clear([self.account_busy])


def login(
    db: Session, database: Database, settings: Settings, actor: Actor, email: str, password: str
) -> User:
    """`service.login` behind the limits. A failure is audited as LOGIN_FAILED in its own
    transaction (`database`), with the targeted account's `user_id` when the email has one
    and the attempted email otherwise, and re-raised; the request's transaction is ended
    first (on SQLite it holds the write lock)."""
    email = service.normalise_email(email)
    limits = LoginLimits.from_settings(settings)
    guard = LoginGuard(throttle.for_session(db), limits, email, actor.ip)
    guard.admit()
    try:
        user = service.login(db, actor, email, password)
    except service.LoginFailed as exc:
        guard.failed()
        details = None if exc.user_id is not None else {"email": email[:320]}
        record_failed_attempt(
            db, database, actor, Action.LOGIN_FAILED, user_id=exc.user_id, details=details
        )
        raise
    except BaseException:
        guard.cancel()
        raise
    guard.succeeded()
    return user


def sign_in(
    db: Session, svc: Services, actor: Actor, body: LoginIn, user_agent: str | None
) -> TokenOut:
    """`POST /auth/login` and the web sign-in form: the limits, the password, a new token."""
    user = login(db, svc.database, svc.settings, actor, body.email, body.password)
    ttl = svc.settings.token_ttl_seconds
    token, row = service.issue_token(db, user, ttl, user_agent, ip_address=actor.ip)
    assert row.expires_at is not None
    return TokenOut(token=token, expires_at=row.expires_at, user=UserOut.model_validate(user))


def sign_up(
    db: Session, svc: Services, body: RegisterIn, user_agent: str | None, ip: str | None = None
) -> TokenOut:
    """`POST /auth/register` and the web sign-up form: open sign-up makes and signs in."""
    if not svc.settings.open_signup:
        raise Forbidden("Sign-up is closed on this server.")
    user = service.create_user(db, email=body.email, name=body.name, password=body.password)
    verification.send_verification(db, user)
    ttl = svc.settings.token_ttl_seconds
    token, row = service.issue_token(db, user, ttl, user_agent, ip_address=ip)
    assert row.expires_at is not None
    return TokenOut(token=token, expires_at=row.expires_at, user=UserOut.model_validate(user))
