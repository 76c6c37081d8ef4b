"""API keys for cloud teachers: only in the OS keyring, or in the environment for headless use.

Nothing here writes a key anywhere else, and no message here ever contains one. When the active
keyring backend cannot keep a secret (none available, or one that writes plain text), storing is
refused with a message that says what to do, like Vorta's ``get_backend_warning``.

A saved key belongs to a provider *and* the host it was saved for (keyring user name
``gemini@generativelanguage.googleapis.com``, ``openai-compatible@api.deepseek.com``): pointing a
provider at another ``base_url`` finds no key there, so the key is never sent to a host it was
not given for. Keys saved by an earlier version under the provider name alone are moved to the
provider's default host on first use; a provider without a default host (openai-compatible)
cannot know where its old key belonged, so that key is left unused and the user saves it again.
A key in the environment (``XIAOER_<PROVIDER>_API_KEY``) is the user's to aim: it is used for
whichever host is configured.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

import keyring
import keyring.backend
import keyring.errors

from app.errors import XiaoerError

SERVICE = "xiaoer"
DEFAULT_HOSTS = {"gemini": "generativelanguage.googleapis.com"}
"""Where a provider's key goes when no base_url is set."""
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Backends that cannot store a secret, or that write it where any process or backup can read it.
_NO_STORAGE = {"keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"}
_PLAINTEXT = {"keyrings.alt.file.PlaintextKeyring", "keyrings.alt.pyfs.PlaintextKeyring"}


class SecretsError(XiaoerError):
    """A key could not be read or stored; the message says what to do and never holds the key."""


def env_var(provider: str) -> str:
    """``XIAOER_GEMINI_API_KEY`` for ``gemini``, ``XIAOER_OPENAI_COMPATIBLE_API_KEY`` for ..."""
    return "XIAOER_" + re.sub(r"[^A-Za-z0-9]", "_", provider).upper() + "_API_KEY"


def _check_provider(provider: str) -> None:
    if not provider.strip():
        raise SecretsError("A provider name is needed to look up its API key")


def key_host(provider: str, base_url: str | None = None) -> str:
    """The host (with a port other than the scheme's default) a key for ``provider`` is sent to:
    that of ``base_url``, or the provider's default host when there is no base_url."""
    _check_provider(provider)
    if base_url:
        parts = urlsplit(base_url.strip())
        try:
            port = parts.port
        except ValueError:
            port = None
        host = (parts.hostname or "").lower()
        if not host:
            raise SecretsError(f"The base URL {base_url!r} names no host to keep a key for")
        if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
            return host
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    default = DEFAULT_HOSTS.get(provider)
    if default is None:
        raise SecretsError(
            f"A key for '{provider}' belongs to a server: set its base URL first, then the key"
        )
    return default


def keyring_user(provider: str, base_url: str | None = None) -> str:
    """The keyring user name a key is stored under: ``<provider>@<host>``."""
    return f"{provider}@{key_host(provider, base_url)}"


def _read(user: str, provider: str) -> str | None:
    try:
        return keyring.get_password(SERVICE, user) or None
    except keyring.errors.NoKeyringError:
        return None
    except keyring.errors.KeyringError as exc:
        raise SecretsError(
            f"Could not read the API key for '{provider}' from the keyring "
            f"({type(exc).__name__}); unlock the keyring and try again."
        ) from None


def _backend_name(backend: keyring.backend.KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _insecure_backends(backend: keyring.backend.KeyringBackend) -> list[str]:
    # A chainer falls through to the next backend when one refuses a write, so one plaintext
    # backend anywhere in the chain can receive the key.
    members = getattr(backend, "backends", None)
    candidates = list(members) if isinstance(members, list | tuple) and members else [backend]
    return [
        _backend_name(b)
        for b in candidates
        if _backend_name(b) in _NO_STORAGE | _PLAINTEXT or "plaintext" in type(b).__name__.lower()
    ]


def keyring_warning() -> str | None:
    """A message for the user when API keys cannot be stored safely; None when all is well."""
    backend = keyring.get_keyring()
    bad = _insecure_backends(backend)
    if not bad:
        return None
    hint = (
        "Use a system keyring (GNOME Keyring or KWallet through Secret Service, macOS Keychain, "
        "Windows Credential Manager), or set the key in an environment variable such as "
        f"{env_var('gemini')}."
    )
    if any(name in _NO_STORAGE for name in bad):
        return f"No secure keyring is available ({', '.join(bad)}), so API keys cannot be saved. {hint}"
    return (
        f"The keyring backend {', '.join(bad)} stores passwords in plain text; Xiaoer will not save "
        f"API keys in it. {hint}"
    )


def get_api_key(provider: str, base_url: str | None = None) -> str | None:
    """The key from ``XIAOER_<PROVIDER>_API_KEY`` if set, else the one saved for ``provider`` at
    ``base_url``'s host (the provider's default host without one), else None."""
    _check_provider(provider)
    from_env = os.environ.get(env_var(provider), "").strip()
    if from_env:
        return from_env
    host = key_host(provider, base_url)
    stored = _read(f"{provider}@{host}", provider)
    if stored or host != DEFAULT_HOSTS.get(provider):
        return stored
    # A key an earlier version saved under the provider name alone was meant for the default
    # host (it had no other): move it there.
    legacy = _read(provider, provider)
    if legacy and keyring_warning() is None:
        try:
            keyring.set_password(SERVICE, f"{provider}@{host}", legacy)
            keyring.delete_password(SERVICE, provider)
        except keyring.errors.KeyringError:
            pass  # moved next time; the key itself is right for this host
    return legacy


def unbound_key_exists(provider: str) -> bool:
    """Whether an earlier version left a key for ``provider`` with no host (never used now)."""
    _check_provider(provider)
    return _read(provider, provider) is not None


def set_api_key(provider: str, key: str, base_url: str | None = None) -> None:
    """Store a key for ``provider`` at ``base_url``'s host (the default host without one) in the
    OS keyring; refuses (SecretsError) when no secure backend exists."""
    user = keyring_user(provider, base_url)
    key = key.strip()
    if not key:
        raise SecretsError(f"The API key for '{provider}' is empty; nothing was stored")
    warning = keyring_warning()
    if warning:
        raise SecretsError(warning)
    try:
        keyring.set_password(SERVICE, user, key)
    except keyring.errors.KeyringError as exc:
        # `from None`: a backend's own message may quote what it was asked to store.
        raise SecretsError(
            f"Could not store the API key for '{provider}' in the keyring "
            f"({type(exc).__name__}); unlock the keyring and try again."
        ) from None


def delete_api_key(provider: str, base_url: str | None = None) -> None:
    """Forget the key stored for ``provider`` at ``base_url``'s host; a no-op when there is none."""
    user = keyring_user(provider, base_url)
    try:
        keyring.delete_password(SERVICE, user)
    except (keyring.errors.PasswordDeleteError, keyring.errors.NoKeyringError):
        pass
    except keyring.errors.KeyringError as exc:
        raise SecretsError(
            f"Could not delete the API key for '{provider}' from the keyring "
            f"({type(exc).__name__}); unlock the keyring and try again."
        ) from None
