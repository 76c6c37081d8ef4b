"""The shop's manager role: only a manager promotes or rolls back adapters and starts evolution
rounds; agents' desktops can't.

The secret lives in the OS keyring of each manager's desktop (never in the database, a settings
file or a log); the shop's database keeps only a salted scrypt hash of it (``team_roles``), so
reading the database does not reveal it. ``XIAOER_MANAGER_SECRET`` stands in for the keyring on
a headless machine (the worker needs none: it runs the jobs a manager enqueued).

This is an application-level role: anyone holding the database's password could write the rows
themselves. Give agents' desktops a database user without write rights on ``adapter_versions``
and ``team_roles`` where that matters (docs/team.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets

import keyring
import keyring.errors
from sqlalchemy import make_url

from app.cloud.secrets import SERVICE, SecretsError, keyring_warning
from app.errors import XiaoerError
from app.store import Store
from app.store.models import utcnow

MANAGER = "manager"
SECRET_ENV = "XIAOER_MANAGER_SECRET"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class NotManager(XiaoerError):
    """The caller has no (or a wrong) manager secret for this shop."""


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex), for the database."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def secret_matches(secret: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    got = hashlib.scrypt(
        secret.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(got.hex(), digest)


def has_manager(shop: Store) -> bool:
    with shop.session() as session:
        return shop.team_role(session, MANAGER) is not None


def set_manager_secret(shop: Store, current: str | None = None, new: str | None = None) -> str:
    """Make (or change) the manager's secret; returns it. Changing one needs the ``current``
    secret; the first one is made by whoever sets the shop up."""
    new = new or secrets.token_urlsafe(24)
    with shop.session() as session:
        row = shop.team_role(session, MANAGER, for_update=True)
        if row is not None:
            if current is None or not secret_matches(current, row.secret_hash):
                raise NotManager("The shop has a manager secret already; give the current one")
            row.secret_hash = hash_secret(new)
            row.updated_at = utcnow()
        else:
            shop.add_team_role(session, MANAGER, hash_secret(new))
    return new


def is_manager(shop: Store, secret: str | None) -> bool:
    if not secret:
        return False
    with shop.session() as session:
        row = shop.team_role(session, MANAGER)
        return row is not None and secret_matches(secret, row.secret_hash)


def require_manager(shop: Store, secret: str | None) -> None:
    """NotManager unless ``secret`` is this shop's manager secret."""
    if not is_manager(shop, secret):
        raise NotManager(
            "Only a manager can do this: this desktop holds no manager secret for the shop "
            "(xiaoer team manager login)"
        )


def keyring_user(shop: Store) -> str:
    """The keyring user name the secret is kept under: one per shop database."""
    url = make_url(str(shop.engine.url))
    return f"team-{MANAGER}@{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def saved_secret(shop: Store) -> str | None:
    """This desktop's manager secret for ``shop``: the keyring's, else ``$XIAOER_MANAGER_SECRET``."""
    try:
        secret = keyring.get_password(SERVICE, keyring_user(shop))
    except keyring.errors.KeyringError:
        secret = None
    return secret or os.environ.get(SECRET_ENV) or None


def save_secret(shop: Store, secret: str) -> None:
    """Check ``secret`` against the shop's hash, then keep it in the OS keyring. SecretsError
    when no secure keyring is available (the secret is never written in plain text)."""
    require_manager(shop, secret)
    warning = keyring_warning()
    if warning:
        raise SecretsError(warning)
    keyring.set_password(SERVICE, keyring_user(shop), secret)


def forget_secret(shop: Store) -> None:
    with contextlib.suppress(keyring.errors.PasswordDeleteError):
        keyring.delete_password(SERVICE, keyring_user(shop))
