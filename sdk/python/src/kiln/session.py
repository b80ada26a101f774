"""A session: a sandbox leased until it is killed or expires, with commands, files and a terminal."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ._core import Core, path_of, quote
from .commands import Commands
from .errors import NotFoundError
from .files import Files
from .models import SessionInfo, SnapshotInfo, Transition, Usage
from .pty import Pty


class Session:
    """Use as a context manager to kill the session on the way out."""

    def __init__(self, core: Core, info: SessionInfo) -> None:
        self._core = core
        self.id = info.id
        self.info = info
        self.commands = Commands(self)
        self.files = Files(self)
        self.pty = Pty(self)

    def refresh(self) -> SessionInfo:
        self.info = SessionInfo.from_json(self._core.json("GET", f"/api/v1/sessions/{quote(self.id)}"))
        return self.info

    def keepalive(self, timeout_ms: Optional[int] = None) -> SessionInfo:
        """Records activity; with ``timeout_ms`` the session now expires that long from now."""
        body = {"timeoutMs": timeout_ms} if timeout_ms is not None else {}
        self.info = SessionInfo.from_json(self._core.json("POST", f"/api/v1/sessions/{quote(self.id)}/keepalive", body))
        return self.info

    def pause(self) -> Transition:
        """Freezes every process (memory, open files and terminals kept; no CPU; paused time does
        not count against the timeout). Any later call resumes it, unless it was created with
        ``auto_resume=False`` (then SessionPausedError until ``resume()``)."""
        return self._transition("pause")

    def resume(self) -> Transition:
        """``resume_type`` is "thawed" (processes kept) or "restored" (from hibernation: files only)."""
        return self._transition("resume")

    def hibernate(self) -> Transition:
        """Saves /workspace to the blob store and frees the sandbox; it stays paused, processes end."""
        return self._transition("hibernate")

    def usage(self) -> Usage:
        """CPU time, memory and processes of its sandbox, read without resuming it."""
        return Usage.from_json(self._core.json("GET", f"/api/v1/sessions/{quote(self.id)}/usage"))

    def snapshot(self, name: Optional[str] = None) -> SnapshotInfo:
        """Saves /workspace as a named snapshot (``kiln.sessions.create_from_snapshot`` starts from it)."""
        body = {"name": name} if name is not None else {}
        return SnapshotInfo.from_json(self._core.json("POST", f"/api/v1/sessions/{quote(self.id)}/snapshots", body, timeout=self._slow()))

    def fork(self, count: int = 1, *, timeout_ms: Optional[int] = None, metadata: Optional[Dict[str, str]] = None) -> List["Session"]:
        """``count`` (1-10) new sessions, each with a copy of /workspace as it is now; all or nothing."""
        body: Dict[str, Any] = {k: v for k, v in (("count", count), ("timeoutMs", timeout_ms), ("metadata", metadata)) if v is not None}
        made = self._core.json("POST", f"/api/v1/sessions/{quote(self.id)}/fork", body, timeout=self._slow())
        return [Session(self._core, SessionInfo.from_json(s)) for s in made["sessions"]]

    def _transition(self, step: str) -> Transition:
        t = Transition.from_json(self._core.json("POST", f"/api/v1/sessions/{quote(self.id)}/{step}", timeout=self._slow()))
        self.info = t.session
        return t

    def _slow(self) -> float:
        # Archiving or restoring a workspace takes seconds per 100 MB.
        return max(self._core.config.timeout, 300.0)

    def kill(self) -> bool:
        """Ends the session and every process in it; False when it was already gone."""
        try:
            self._core.request("DELETE", f"/api/v1/sessions/{quote(self.id)}").read()
            return True
        except NotFoundError:
            return False

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, template={self.info.template!r})"


class Sessions:
    """``kiln.sessions``."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def create(self, template: Optional[str] = None, *, timeout_ms: Optional[int] = None, idle_timeout_ms: Optional[int] = None, env: Optional[Dict[str, str]] = None, metadata: Optional[Dict[str, str]] = None, **extra: Any) -> Session:
        """Leases a sandbox of ``template`` (Kiln's default: nodejs). ``extra`` is passed as is
        (e.g. ``resources``, ``nfs``)."""
        body: Dict[str, Any] = {k: v for k, v in (("template", template), ("timeoutMs", timeout_ms), ("idleTimeoutMs", idle_timeout_ms), ("env", env), ("metadata", metadata)) if v is not None}
        body.update(extra)
        return Session(self._core, SessionInfo.from_json(self._core.json("POST", "/api/v1/sessions", body, timeout=max(self._core.config.timeout, 120.0))))

    def create_from_snapshot(self, snapshot_id: str, template: Optional[str] = None, **kw: Any) -> Session:
        """A new session whose /workspace holds the snapshot's files (its template unless given);
        the other arguments as ``create``."""
        return self.create(template, fromSnapshot=snapshot_id, **kw)

    def connect(self, session_id: str) -> Session:
        """A Session for an existing id (raises SessionNotFoundError if there is none)."""
        return Session(self._core, SessionInfo.from_json(self._core.json("GET", f"/api/v1/sessions/{quote(session_id)}")))

    def list(self, template: Optional[str] = None, metadata: Optional[Dict[str, str]] = None) -> List[SessionInfo]:
        q: Dict[str, Any] = {"template": template}
        q.update({f"metadata.{k}": v for k, v in (metadata or {}).items()})
        return [SessionInfo.from_json(s) for s in self._core.json("GET", path_of("/api/v1/sessions", q))["sessions"]]

    def kill(self, session_id: str) -> bool:
        try:
            self._core.request("DELETE", f"/api/v1/sessions/{quote(session_id)}").read()
            return True
        except NotFoundError:
            return False
