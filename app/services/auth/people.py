"""People who sign in to the web app: accounts, passwords, lockout and sessions.

- Passwords are hashed with argon2id (argon2-cffi, the reference implementation's binding;
  RFC 9106 parameters of its default profile), never stored or logged in clear.
- A wrong password, an unknown address, a disabled or a locked account all get the same
  answer, after the same work (an unknown address is checked against a dummy hash), so the
  sign-in form tells nobody which addresses have accounts. After web_max_failures wrong
  passwords in a row the account is locked for web_lockout_minutes.
- A session is a random 256-bit token in a cookie; the database keeps its SHA-256 only, so
  a copy of the database signs nobody in. It ends after web_session_idle_minutes unused or
  web_session_max_hours in all, at sign-out, or everywhere at once ("sign out everywhere").
  Each session has its own CSRF token for the forms it posts.
- A second factor (TOTP, RFC 6238, pyotp) when the person has one, or when their agency
  requires one (`casebridge users require-totp`): the password then opens a session that
  only the code completes; a person without one enrols on the spot (the secret shown once,
  as text and as a QR code). Wrong codes count towards the same lockout as wrong passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.clock import Clock
from app.config import Settings
from app.fhir.errors import InvalidRequest, NotFound, Unauthorized
from app.security.caller import Caller, parse_agency
from app.services.uow import transaction
from app.storage.web_rows import WebSession, WebStore, WebUser

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,60}$")
_PRACTITIONER = re.compile(r"^Practitioner/[A-Za-z0-9\-.]{1,64}$")
# Long enough to resist guessing with the lockout; NIST SP 800-63B asks at least 8.
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
SIGN_IN_REFUSED = "The email address or password is not right, or the account is locked."


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the cookie's token (given to the browser once) and its CSRF token;
    stage "totp" or "enrol" while the second factor is still to come."""

    token: str
    csrf: str
    user: WebUser
    stage: str = "full"


@dataclass(frozen=True, slots=True)
class Pending:
    """A session waiting for its second factor: the code of an enrolled one ("totp"), or
    the first code of a new one ("enrol", whose secret is offered)."""

    user: WebUser
    stage: str
    csrf: str
    enrol_secret: str | None

    def enrol_uri(self) -> str | None:
        """The otpauth:// URI authenticator apps read (from the QR code)."""
        if self.enrol_secret is None:
            return None
        return pyotp.TOTP(self.enrol_secret).provisioning_uri(
            name=self.user.email, issuer_name="casebridge"
        )


@dataclass(frozen=True, slots=True)
class Person:
    """The person a live session belongs to, as a request sees them."""

    user: WebUser
    csrf: str
    token_hash: str

    def caller(self) -> Caller:
        """The person acts with their agency's access rules, named as themselves."""
        return Caller(agency=self.user.agency, person=self.user.practitioner)


def token_hash(token: str) -> str:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normal_email(value: str) -> str:
    """An email address as accounts are keyed (trimmed, lower-case), or 400."""
    email = value.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidRequest(f"{value[:80]!r} is not an email address", expression=("email",))
    return email


class PeopleService:
    """Accounts and sessions of the web app."""

    def __init__(self, *, engine: Engine, clock: Clock, settings: Settings) -> None:
        self._engine = engine
        self._clock = clock
        self._settings = settings
        self._hasher = PasswordHasher()
        # Checked when an address has no account, so that case costs the same work.
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    # -- accounts (the command line) ------------------------------------------------------
    def add_user(
        self, *, email: str, agency: str, practitioner: str, password: str, name: str | None
    ) -> WebUser:
        """A new account; 400 for a bad address, agency, practitioner or a weak password."""
        user = WebUser(
            id=self._clock.new_id(),
            email=normal_email(email),
            name=(name or "").strip()[:200] or None,
            agency=parse_agency(agency, what="--org"),
            practitioner=_practitioner(practitioner),
            password_hash=self._hasher.hash(_password(password)),
            failed_logins=0,
            locked_until=None,
            disabled=False,
            created_at=self._clock.now(),
        )
        try:
            with transaction(self._engine, write=True) as repo:
                WebStore(repo).add_user(user)
        except IntegrityError as exc:
            raise InvalidRequest(f"{user.email} already has an account") from exc
        return user

    def users(self) -> list[WebUser]:
        """Every account."""
        with transaction(self._engine, write=False) as repo:
            return WebStore(repo).users()

    def set_password(self, *, email: str, password: str) -> None:
        """A new password (unlocks the account; its sessions end)."""
        hashed = self._hasher.hash(_password(password))
        with transaction(self._engine, write=True) as repo:
            store = WebStore(repo)
            user = self._known(store, email)
            store.set_password(user.id, hashed)
            store.end_sessions(user.id)

    def set_disabled(self, *, email: str, disabled: bool) -> None:
        """Disable (its sessions end) or enable an account."""
        with transaction(self._engine, write=True) as repo:
            store = WebStore(repo)
            user = self._known(store, email)
            store.set_disabled(user.id, disabled)
            if disabled:
                store.end_sessions(user.id)

    def unlock(self, *, email: str) -> None:
        """Clear an account's failed sign-ins and lock."""
        with transaction(self._engine, write=True) as repo:
            store = WebStore(repo)
            store.set_sign_in_state(
                self._known(store, email).id, failed_logins=0, locked_until=None
            )

    @staticmethod
    def _known(store: WebStore, email: str) -> WebUser:
        user = store.user_by_email(normal_email(email))
        if user is None:
            raise NotFound(f"No account for {email!r}")
        return user

    # -- signing in and out --------------------------------------------------------------
    def sign_in(self, *, email: str, password: str) -> SignedIn:
        """A new session for a right password; Unauthorized (one message for every
        reason) otherwise."""
        now = self._clock.now()
        address = email.strip().lower()[:254]
        with transaction(self._engine, write=True) as repo:
            store = WebStore(repo)
            user = store.user_by_email(address)
            if user is None:
                _verify(self._hasher, self._dummy, password)
                raise Unauthorized(SIGN_IN_REFUSED)
            locked = user.locked_until is not None and user.locked_until > now
            right = _verify(self._hasher, user.password_hash, password)
            if locked or user.disabled or not right:
                if not right and not locked:
                    failures = user.failed_logins + 1
                    lock = None
                    if failures >= self._settings.web_max_failures:
                        lock = now + timedelta(minutes=self._settings.web_lockout_minutes)
                        failures = 0
                    store.set_sign_in_state(user.id, failed_logins=failures, locked_until=lock)
                # The failure counts even though the request is refused: commit it.
                refused = Unauthorized(SIGN_IN_REFUSED)
            else:
                refused = None
                store.set_sign_in_state(user.id, failed_logins=0, locked_until=None)
                if self._hasher.check_needs_rehash(user.password_hash):
                    store.set_password(user.id, self._hasher.hash(password))
                token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
                expires = now + timedelta(hours=self._settings.web_session_max_hours)
                stage, offered = "full", None
                if user.totp_secret:
                    stage = "totp"
                elif store.requires_totp(user.agency):
                    stage, offered = "enrol", pyotp.random_base32()
                store.add_session(token_hash(token), user.id, csrf, now, expires, stage, offered)
                store.purge_sessions(now)
        if refused is not None:
            raise refused
        return SignedIn(token, csrf, user, stage)

    def session(self, token: str) -> Person | None:
        """The person of a live session token (its idle time starts again), None for a
        token that is unknown, ended, idle too long or of a disabled account."""
        if not token or len(token) > 128:
            return None
        hashed = token_hash(token)
        now = self._clock.now()
        # Read first: most requests change nothing, and a write transaction per request
        # would queue every page's requests for SQLite's one writer.
        with transaction(self._engine, write=False) as repo:
            found: WebSession | None = WebStore(repo).session(hashed)
        if found is None:
            return None
        idle = now - found.last_seen_at > timedelta(minutes=self._settings.web_session_idle_minutes)
        if idle or found.expires_at <= now or found.user.disabled:
            with transaction(self._engine, write=True) as repo:
                WebStore(repo).end_session(hashed)
            return None
        if found.stage != "full":
            return None  # the second factor is still to come
        # Touched at most once a minute: a page's many requests write once.
        if now - found.last_seen_at > timedelta(minutes=1):
            with transaction(self._engine, write=True) as repo:
                WebStore(repo).touch_session(hashed, now)
        return Person(found.user, found.csrf, hashed)

    def pending(self, token: str) -> Pending | None:
        """A session waiting for its second factor (None for any other token)."""
        if not token or len(token) > 128:
            return None
        now = self._clock.now()
        with transaction(self._engine, write=False) as repo:
            found = WebStore(repo).session(token_hash(token))
        if found is None or found.stage == "full" or found.user.disabled:
            return None
        # Ten minutes to give the code after the password.
        if now - found.created_at > timedelta(minutes=10) or found.expires_at <= now:
            return None
        return Pending(found.user, found.stage, found.csrf, found.enrol_secret)

    def second_factor(self, token: str, code: str) -> None:
        """Complete a session with a TOTP code (enrolling the secret offered, for "enrol");
        Unauthorized for a wrong code, which counts towards the lockout."""
        hashed = token_hash(token)
        now = self._clock.now()
        with transaction(self._engine, write=True) as repo:
            store = WebStore(repo)
            found = store.session(hashed)
            if found is None or found.stage == "full":
                raise Unauthorized("Sign in again")
            user = found.user
            locked = user.locked_until is not None and user.locked_until > now
            secret = found.enrol_secret if found.stage == "enrol" else user.totp_secret
            right = (
                secret is not None
                and not locked
                and pyotp.TOTP(secret).verify(code.strip()[:12], for_time=now, valid_window=1)
            )
            refused: Unauthorized | None = None
            if right:
                if found.stage == "enrol":
                    store.set_totp_secret(user.id, secret)
                store.set_sign_in_state(user.id, failed_logins=0, locked_until=None)
                store.complete_session(hashed, now)
            else:
                if not locked:
                    failures = user.failed_logins + 1
                    lock = None
                    if failures >= self._settings.web_max_failures:
                        lock = now + timedelta(minutes=self._settings.web_lockout_minutes)
                        failures = 0
                        store.end_session(hashed)
                    store.set_sign_in_state(user.id, failed_logins=failures, locked_until=lock)
                refused = Unauthorized("That code is not right, or the account is locked.")
        if refused is not None:
            raise refused

    def require_totp(self, *, agency: str, required: bool) -> None:
        """Ask (or stop asking) an agency's people for a second factor."""
        with transaction(self._engine, write=True) as repo:
            WebStore(repo).set_requires_totp(parse_agency(agency, what="--org"), required)

    def reset_totp(self, *, email: str) -> None:
        """Remove a person's second factor (a lost phone): they enrol again if required."""
        with transaction(self._engine, write=True) as repo:
            store = WebStore(repo)
            user = self._known(store, email)
            store.set_totp_secret(user.id, None)
            store.end_sessions(user.id)

    def sign_out(self, person: Person, *, everywhere: bool = False) -> None:
        """End this session, or every session of the person."""
        with transaction(self._engine, write=True) as repo:
            store = WebStore(repo)
            if everywhere:
                store.end_sessions(person.user.id)
            else:
                store.end_session(person.token_hash)


def csrf_matches(person: Person, offered: str | None) -> bool:
    """Whether a form's or header's CSRF token is the session's (constant time)."""
    return offered is not None and hmac.compare_digest(person.csrf, offered)


def _verify(hasher: PasswordHasher, hashed: str, password: str) -> bool:
    try:
        return hasher.verify(hashed, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return False


def _password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"A password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidRequest(f"A password has at most {MAX_PASSWORD} characters")
    return password


def _practitioner(value: str) -> str:
    value = value.strip()
    if not _PRACTITIONER.match(value):
        raise InvalidRequest(
            f"--practitioner must be Practitioner/{{id}}, not {value[:80]!r}",
            expression=("practitioner",),
        )
    return value


__all__ = [
    "MIN_PASSWORD",
    "SIGN_IN_REFUSED",
    "Pending",
    "PeopleService",
    "Person",
    "SignedIn",
    "csrf_matches",
    "normal_email",
    "token_hash",
]
