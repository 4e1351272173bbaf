"""The one error vocabulary every adapter speaks.

Adapters translate their transport's failures (HTTP status, Graph error codes, connection errors)
into these, in one place each; the service decides what to do by type alone.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the service layer understands."""

    def __init__(self, message: str, *, code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).__name__
        self.status = status

    def __str__(self) -> str:
        if self.code and self.code != type(self).__name__:
            return f"{self.code}: {self.message}"
        return self.message


class Transient(SyncError):
    """Worth retrying later: throttling, a 5xx, a dropped connection."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class NotFound(SyncError):
    """The object does not exist (or no longer does)."""


class Conflict(SyncError):
    """The write collides with existing state: an existing object, an ambiguous match."""


class BadRequest(SyncError):
    """The request itself is wrong for this object; repeating it will not help."""


class StopSync(SyncError):
    """The whole cycle cannot go on: bad credentials, missing permission, unreadable source."""


class ResyncRequired(StopSync):
    """The delta token was rejected or expired: only a full cycle can continue."""
