"""API keys for cloud teachers: only in the OS keyring, or in the environment for headless use.

Nothing here writes a key anywhere else, and no message here ever contains one. When the active
keyring backend cannot keep a secret (none available, or one that writes plain text), storing is
refused with a message that says what to do, like Vorta's ``get_backend_warning``.
"""

from __future__ import annotations

import os
import re

import keyring
import keyring.backend
import keyring.errors

from app.errors import XiaoerError

SERVICE = "xiaoer"

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


def get_api_key(provider: str) -> str | None:
    """The key from ``XIAOER_<PROVIDER>_API_KEY`` if set, else from the keyring, else None."""
    _check_provider(provider)
    from_env = os.environ.get(env_var(provider), "").strip()
    if from_env:
        return from_env
    try:
        stored = keyring.get_password(SERVICE, provider)
    except keyring.errors.NoKeyringError:
        return None
    except keyring.errors.KeyringError as exc:
        raise SecretsError(
            f"Could not read the API key for '{provider}' from the keyring "
            f"({type(exc).__name__}); unlock the keyring and try again."
        ) from None
    return stored or None


def set_api_key(provider: str, key: str) -> None:
    """Store a key in the OS keyring; refuses (SecretsError) when no secure backend exists."""
    _check_provider(provider)
    key = key.strip()
    if not key:
        raise SecretsError(f"The API key for '{provider}' is empty; nothing was stored")
    warning = keyring_warning()
    if warning:
        raise SecretsError(warning)
    try:
        keyring.set_password(SERVICE, provider, key)
    except keyring.errors.KeyringError as exc:
        # `from None`: a backend's own message may quote what it was asked to store.
        raise SecretsError(
            f"Could not store the API key for '{provider}' in the keyring "
            f"({type(exc).__name__}); unlock the keyring and try again."
        ) from None


def delete_api_key(provider: str) -> None:
    """Forget a stored key; a no-op when there is none."""
    _check_provider(provider)
    try:
        keyring.delete_password(SERVICE, provider)
    except (keyring.errors.PasswordDeleteError, keyring.errors.NoKeyringError):
        pass
    except keyring.errors.KeyringError as exc:
        raise SecretsError(
            f"Could not delete the API key for '{provider}' from the keyring "
            f"({type(exc).__name__}); unlock the keyring and try again."
        ) from None
