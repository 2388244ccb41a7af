"""Settings of the review app: where it listens and who may sign in.

Reviewers are ``name:password`` pairs from ``CONVEYOR_REVIEW_USERS``; passwords are kept as
:class:`pydantic.SecretStr` (never shown by ``repr`` or logs) and compared in constant time.
"""
from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

from pydantic import SecretStr

from conveyor.streams.config import env

DEFAULT_PORT = 8088


class ReviewSettingsError(ValueError):
    """The review app's settings are unusable (no reviewer, a malformed pair, a bad port)."""


@dataclass(frozen=True)
class ReviewSettings:
    """Bind address, port and reviewers (name -> password) of ``conveyor review``."""

    addr: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    users: tuple[tuple[str, SecretStr], ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> ReviewSettings:
        """Read ``CONVEYOR_REVIEW_ADDR``, ``_PORT`` and ``_USERS``.

        Raises:
            ReviewSettingsError: no reviewer, a pair without ``:`` or with an empty part, a
                non-numeric port.
        """
        e = os.environ if environ is None else environ
        users: list[tuple[str, SecretStr]] = []
        for pair in (e.get(env.REVIEW_USERS) or "").split(","):
            if not pair.strip():
                continue
            name, sep, password = pair.strip().partition(":")
            if not sep or not name or not password:
                raise ReviewSettingsError(f"{env.REVIEW_USERS}: each entry is name:password "
                                          f"(entry {len(users) + 1} is not)")
            users.append((name, SecretStr(password)))
        if not users:
            raise ReviewSettingsError(f"no reviewer can sign in: set {env.REVIEW_USERS}=name:password[,...]")
        port = e.get(env.REVIEW_PORT) or str(DEFAULT_PORT)
        if not port.isdigit():
            raise ReviewSettingsError(f"{env.REVIEW_PORT} must be a port number, not {port!r}")
        return cls(addr=e.get(env.REVIEW_ADDR) or "127.0.0.1", port=int(port), users=tuple(users))

    def check(self, name: str, password: str) -> bool:
        """Whether ``name`` / ``password`` are a reviewer's (constant-time comparison)."""
        ok = False
        for user, secret in self.users:
            same_user = hmac.compare_digest(user.encode(), name.encode())
            same_password = hmac.compare_digest(secret.get_secret_value().encode(), password.encode())
            ok |= same_user and same_password
        return ok
