"""What Kiln returns, as typed records. Each keeps the JSON it came from in ``raw``, so fields
Kiln adds later are readable before this SDK names them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class SessionInfo:
    id: str
    template: str
    status: str
    tenant: str
    created_at: str
    expires_at: str
    metadata: Dict[str, str]
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "SessionInfo":
        return cls(id=j["id"], template=j.get("template", ""), status=j.get("status", ""), tenant=j.get("tenant", ""), created_at=j.get("createdAt", ""), expires_at=j.get("expiresAt", ""), metadata=dict(j.get("metadata") or {}), raw=j)


@dataclass
class CommandResult:
    """A finished command. ``exit_code`` is -1 when it was killed by ``signal``."""

    exit_code: int
    stdout: str
    stderr: str
    pid: int = 0
    signal: str = ""
    duration_ms: float = 0.0
    truncated: bool = False
    timed_out: bool = False

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "CommandResult":
        code = j.get("exitCode")
        return cls(exit_code=int(code) if code is not None else -1, stdout=j.get("stdout", ""), stderr=j.get("stderr", ""), pid=j.get("pid", 0), signal=j.get("signal", ""), duration_ms=j.get("durationMs", 0.0), truncated=bool(j.get("truncated")), timed_out=bool(j.get("timedOut")))


@dataclass
class ProcessEvent:
    """One event of a streamed process: ``type`` is start, stdout, stderr, pty or exit."""

    type: str
    data: str = ""
    pid: int = 0
    exit_code: Optional[int] = None
    signal: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class ProcessInfo:
    pid: int
    command: str
    args: List[str]
    running: bool
    exit_code: Optional[int]
    signal: str
    stdout: str
    stderr: str
    tag: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "ProcessInfo":
        return cls(pid=j["pid"], command=j.get("command", ""), args=list(j.get("args") or []), running=bool(j.get("running")), exit_code=j.get("exitCode"), signal=j.get("signal", ""), stdout=j.get("stdout", ""), stderr=j.get("stderr", ""), tag=j.get("tag"), raw=j)


@dataclass
class FileInfo:
    path: str
    name: str
    type: str
    size: int
    mode: int
    modified_at: str
    symlink_target: Optional[str] = None

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "FileInfo":
        return cls(path=j["path"], name=j.get("name", ""), type=j.get("type", ""), size=j.get("size", 0), mode=j.get("mode", 0), modified_at=j.get("modifiedAt", ""), symlink_target=j.get("symlinkTarget"))


@dataclass
class FunctionInfo:
    name: str
    version: str
    runtime: str
    handler: str
    code_sha256: str
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "FunctionInfo":
        return cls(name=j["name"], version=j.get("version", ""), runtime=j.get("runtime", ""), handler=j.get("handler", ""), code_sha256=j.get("codeSha256", ""), raw=j)


@dataclass
class Invocation:
    """A function invocation's record. ``result`` is the handler's JSON result when ``status`` is
    succeeded; ``error`` is Lambda-shaped (errorType, errorMessage, stackTrace) otherwise."""

    id: str
    status: str
    result: Any
    error: Optional[Dict[str, Any]]
    logs: str
    duration_ms: float
    start_type: str
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "Invocation":
        return cls(id=j.get("id", ""), status=j.get("status", ""), result=j.get("result"), error=j.get("error"), logs=j.get("logs", ""), duration_ms=j.get("durationMs", 0.0), start_type=j.get("startType", ""), raw=j)


@dataclass
class Transition:
    """The answer to pause, resume and hibernate: the session after the step, and for a resume
    ``resume_type`` "thawed" (processes kept) or "restored" (from hibernation: files only)."""

    session: SessionInfo
    resume_type: Optional[str]
    took_ms: float

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "Transition":
        return cls(session=SessionInfo.from_json(j), resume_type=j.get("resumeType"), took_ms=j.get("tookMs", 0.0))


@dataclass
class Usage:
    """What a session's sandbox has used, read without resuming it."""

    paused: bool
    hibernated: bool
    cpu_usage_us: int
    memory_bytes: int
    processes: int

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "Usage":
        return cls(paused=bool(j.get("paused")), hibernated=bool(j.get("hibernated")), cpu_usage_us=j.get("cpuUsageUs", 0), memory_bytes=j.get("memoryBytes", 0), processes=j.get("processes", 0))


@dataclass
class SnapshotInfo:
    """A saved /workspace (``session.snapshot()``), per tenant."""

    id: str
    name: str
    template: str
    session_id: str
    tenant: str
    created_at: str
    bytes: int
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "SnapshotInfo":
        return cls(id=j["id"], name=j.get("name", ""), template=j.get("template", ""), session_id=j.get("sessionId", ""), tenant=j.get("tenant", ""), created_at=j.get("createdAt", ""), bytes=j.get("bytes", 0), raw=j)


@dataclass
class VolumeInfo:
    """A named volume (``kiln.volumes``), per tenant; writes past ``size_mb`` fail with ENOSPC."""

    id: str
    name: str
    tenant: str
    size_mb: int
    created_at: str
    raw: Dict[str, Any] = field(repr=False)
    #: ``local`` (an ext4 image on the local platform's host, live-shared) or ``synced`` (archives
    #: in the blob store, copied into each session; one writer at a time).
    mode: str = "local"
    #: Synced volumes: the current generation (0: never synced).
    generation: Optional[int] = None

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "VolumeInfo":
        return cls(id=j["id"], name=j.get("name", ""), tenant=j.get("tenant", ""), size_mb=j.get("sizeMB", 0), created_at=j.get("createdAt", ""), raw=j, mode=j.get("mode", "local"), generation=j.get("generation"))
