"""Kiln's Python SDK: sessions (sandboxes) with commands, files and terminals, and functions.

    from kiln import Kiln
    kiln = Kiln("http://127.0.0.1:8080", api_key="...")
    with kiln.sessions.create(template="nodejs") as s:
        print(s.commands.run("echo hi").stdout)
"""
from ._core import __version__
from .aio import AsyncCommandHandle, AsyncKiln, AsyncSession, AsyncTerminal
from .client import Kiln
from .commands import CommandHandle
from .errors import (
    ERROR_MAP,
    AuthenticationError,
    CommandExitError,
    ConflictError,
    DiskQuotaExceededError,
    ExecutionNotFoundError,
    ExecutorLostError,
    ForbiddenError,
    FunctionExistsError,
    FunctionNotFoundError,
    InvalidRequestError,
    KilnConnectionError,
    KilnError,
    KilnTimeoutError,
    NoCapacityError,
    NotFoundError,
    PathNotFoundError,
    PathOutsideWorkspaceError,
    PayloadTooLargeError,
    PreconditionFailedError,
    ProcessNotFoundError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    SessionLostError,
    SessionNotFoundError,
    SessionPausedError,
    SnapshotNotFoundError,
    VolumeInUseError,
    VolumeNotFoundError,
    SymlinkNotFollowedError,
    TemplateNotFoundError,
    TooManyRequestsError,
    WaitTimeoutError,
)
from .models import CommandResult, FileInfo, FunctionInfo, Invocation, ProcessEvent, ProcessInfo, SessionInfo, SnapshotInfo, Transition, Usage, VolumeInfo
from .pty import Terminal
from .session import Session

__all__ = [
    "__version__", "Kiln", "AsyncKiln", "Session", "AsyncSession", "CommandHandle", "AsyncCommandHandle", "Terminal", "AsyncTerminal",
    "CommandResult", "FileInfo", "FunctionInfo", "Invocation", "ProcessEvent", "ProcessInfo", "SessionInfo", "SnapshotInfo", "Transition", "Usage", "VolumeInfo", "ERROR_MAP",
    "KilnError", "InvalidRequestError", "PathOutsideWorkspaceError", "SymlinkNotFollowedError", "AuthenticationError", "ForbiddenError",
    "NotFoundError", "SessionNotFoundError", "SessionPausedError", "SnapshotNotFoundError", "VolumeNotFoundError", "VolumeInUseError", "PathNotFoundError", "ProcessNotFoundError", "FunctionNotFoundError", "TemplateNotFoundError",
    "ExecutionNotFoundError", "ConflictError", "FunctionExistsError", "SessionLostError", "PreconditionFailedError", "PayloadTooLargeError",
    "DiskQuotaExceededError", "RateLimitError", "QuotaExceededError", "TooManyRequestsError", "ServerError", "ServiceUnavailableError",
    "NoCapacityError", "ExecutorLostError", "WaitTimeoutError", "KilnTimeoutError", "KilnConnectionError", "CommandExitError",
]
