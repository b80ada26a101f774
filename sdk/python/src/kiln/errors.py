"""Typed errors, mapped from Kiln's error codes in one table (``ERROR_MAP``).

Every Kiln error body is ``{"error": {"code", "message", "data"?}}`` (control-plane/src/api/errors.ts).
``error_from_response`` rebuilds the class for the code; an unknown code falls back to the class
for its HTTP status, so a code added to Kiln later still raises something sensible.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Type


class KilnError(Exception):
    """Anything Kiln answered with an error, or a failure talking to it.

    ``code`` is Kiln's stable error code, ``status`` the HTTP status (0 when no response came),
    ``data`` the error's data, ``retry_after`` the server's Retry-After in seconds (if any).
    """

    #: Whether sending the same request again later may succeed (the client retries these).
    retryable = False

    def __init__(self, message: str, *, code: str = "KilnError", status: int = 0, data: Optional[Mapping[str, Any]] = None, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.data: Dict[str, Any] = dict(data or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.status == 0 else f"{self.code} (HTTP {self.status}): {self.message}"


# 400
class InvalidRequestError(KilnError):
    """The request was malformed or a value is out of range; the message says what to change."""


class PathOutsideWorkspaceError(InvalidRequestError):
    """A file path leads outside the session's /workspace."""


class SymlinkNotFollowedError(InvalidRequestError):
    """A read, write, list or mkdir went through a symlink; Kiln never follows them."""


# 401 / 403
class AuthenticationError(KilnError):
    """The API key is missing or unknown."""


class ForbiddenError(KilnError):
    """The key lacks the scope for this route, or a browser origin/host was refused."""


# 404
class NotFoundError(KilnError):
    """The resource does not exist (or belongs to another tenant, which looks the same)."""


class SessionNotFoundError(NotFoundError):
    @property
    def session_id(self) -> Optional[str]:
        return self.data.get("sessionId")


class PathNotFoundError(NotFoundError):
    """Code ``FileNotFound``: no file or directory at that path in the session."""


class ProcessNotFoundError(NotFoundError):
    pass


class FunctionNotFoundError(NotFoundError):
    pass


class TemplateNotFoundError(NotFoundError):
    pass


class ExecutionNotFoundError(NotFoundError):
    pass


class SnapshotNotFoundError(NotFoundError):
    pass


class VolumeNotFoundError(NotFoundError):
    pass


# 409 / 410 / 412
class ConflictError(KilnError):
    """The request conflicts with the resource's state (exists already, in use, busy)."""


class FunctionExistsError(ConflictError):
    pass


class VolumeInUseError(ConflictError):
    """A live (running, paused or hibernated) session mounts the volume: end that session first."""


class SessionPausedError(ConflictError):
    """The session is paused and was created with ``auto_resume=False``: ``session.resume()`` first."""


class SessionLostError(KilnError):
    """HTTP 410: the session's sandbox went away (its executor died); create a new session."""


class PreconditionFailedError(KilnError):
    pass


# 413
class PayloadTooLargeError(KilnError):
    """The body is over the server's limit (KILN_MAX_BODY_BYTES) or the workspace is full."""


class DiskQuotaExceededError(PayloadTooLargeError):
    pass


# 429
class RateLimitError(KilnError):
    """Throttled: retry after ``retry_after`` seconds (the client does, up to ``max_retries``)."""

    retryable = True


class QuotaExceededError(RateLimitError):
    """The tenant is at a quota: ``quota`` names it (sessions, executions, requestsPerSecond, ...)."""

    @property
    def quota(self) -> Optional[str]:
        return self.data.get("quota")

    @property
    def limit(self) -> Optional[int]:
        return self.data.get("limit")

    @property
    def used(self) -> Optional[int]:
        return self.data.get("used")

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        # A count quota (sessions, memoryMB, functions) frees only when the caller ends something;
        # the request rate and executions recover by themselves within seconds.
        return self.quota in (None, "requestsPerSecond", "executions")


class TooManyRequestsError(RateLimitError):
    """A template's queue is full."""


# 5xx
class ServerError(KilnError):
    """Kiln's own fault (5xx); the message says where to look."""


class ServiceUnavailableError(ServerError):
    """HTTP 503: Redis or capacity is unavailable for now; retried with backoff."""

    retryable = True


class NoCapacityError(ServiceUnavailableError):
    pass


class ExecutorLostError(ServerError):
    pass


class WaitTimeoutError(ServerError):
    pass


# Client side
class KilnTimeoutError(KilnError):
    """No answer from Kiln within the client's timeout."""


class KilnConnectionError(KilnError):
    """Kiln could not be reached (refused, reset, DNS, TLS)."""


class CommandExitError(KilnError):
    """A command run with ``check=True`` exited with a non-zero code; ``result`` holds its output."""

    def __init__(self, result: Any) -> None:
        super().__init__(f"command exited with code {result.exit_code}: {result.stderr[-500:]}", code="CommandExit")
        self.result = result


#: The one table from Kiln's error codes to classes.
ERROR_MAP: Dict[str, Type[KilnError]] = {
    "InvalidRequest": InvalidRequestError,
    "InvalidJSON": InvalidRequestError,
    "InvalidRequestContent": InvalidRequestError,
    "InvalidZip": InvalidRequestError,
    "InvalidSignal": InvalidRequestError,
    "InvalidCodePath": InvalidRequestError,
    "InvalidNfsAllowList": InvalidRequestError,
    "NfsDisabled": InvalidRequestError,
    "NotADirectory": InvalidRequestError,
    "IsADirectory": InvalidRequestError,
    "NameTooLong": InvalidRequestError,
    "UnsupportedResources": InvalidRequestError,
    "UnsupportedSetting": InvalidRequestError,
    "NetworkPolicyWidens": InvalidRequestError,
    "PathOutsideWorkspace": PathOutsideWorkspaceError,
    "SymlinkNotFollowed": SymlinkNotFollowedError,
    "Unauthorized": AuthenticationError,
    "SessionAccessDenied": AuthenticationError,
    "Forbidden": ForbiddenError,
    "OriginNotAllowed": ForbiddenError,
    "HostNotAllowed": ForbiddenError,
    "CodeLinkRefused": ForbiddenError,
    "SessionNotFound": SessionNotFoundError,
    "FileNotFound": PathNotFoundError,
    "ProcessNotFound": ProcessNotFoundError,
    "FunctionNotFound": FunctionNotFoundError,
    "TemplateNotFound": TemplateNotFoundError,
    "ExecutionNotFound": ExecutionNotFoundError,
    "SnapshotNotFound": SnapshotNotFoundError,
    "VolumeNotFound": VolumeNotFoundError,
    "VolumeExists": ConflictError,
    "VolumeInUse": VolumeInUseError,
    "FunctionExists": FunctionExistsError,
    "FunctionConflict": ConflictError,
    "TemplateExists": ConflictError,
    "TemplateInUse": ConflictError,
    "TenantExists": ConflictError,
    "AliasExists": ConflictError,
    "FunctionUrlExists": ConflictError,
    "VersionInUse": ConflictError,
    "SessionBusy": ConflictError,
    "SessionPaused": SessionPausedError,
    "PauseUnsupported": ConflictError,
    "SessionCodeConflict": ConflictError,
    "SessionAlreadyBound": ConflictError,
    "FileExists": ConflictError,
    "DirectoryNotEmpty": ConflictError,
    "SessionLost": SessionLostError,
    "PreconditionFailed": PreconditionFailedError,
    "PayloadTooLarge": PayloadTooLargeError,
    "DiskQuotaExceeded": DiskQuotaExceededError,
    "WorkspaceTooLarge": PayloadTooLargeError,
    "QuotaExceeded": QuotaExceededError,
    "TooManyRequests": TooManyRequestsError,
    "ServiceUnavailable": ServiceUnavailableError,
    "NoCapacity": NoCapacityError,
    "ExecutorLost": ExecutorLostError,
    "WaitTimeout": WaitTimeoutError,
    "InternalError": ServerError,
}

#: When a code has no row: the class for its status.
STATUS_MAP: Dict[int, Type[KilnError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: SessionLostError,
    412: PreconditionFailedError,
    413: PayloadTooLargeError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_class(code: str, status: int) -> Type[KilnError]:
    if code in ERROR_MAP:
        return ERROR_MAP[code]
    if code.endswith("NotFound"):
        return NotFoundError
    return STATUS_MAP.get(status, ServerError if status >= 500 else KilnError)


def error_from_response(status: int, body: bytes, retry_after: Optional[float] = None) -> KilnError:
    """The typed error for an HTTP error response (any body; Kiln's is JSON)."""
    code, message = f"Http{status}", ""
    data: Dict[str, Any] = {}
    try:
        err = json.loads(body.decode("utf-8"))["error"]
        code = str(err.get("code") or code)
        message = str(err.get("message") or "")
        data = err.get("data") or {}
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        message = body[:500].decode("utf-8", "replace")
    if not message:
        message = f"HTTP {status}"
    return error_class(code, status)(message, code=code, status=status, data=data, retry_after=retry_after)
