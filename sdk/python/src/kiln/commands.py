"""Processes in a session: run to completion, stream output, background processes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Generator, Iterator, List, Literal, Optional, Sequence, Union, overload

from ._core import quote
from ._sse import sse_events
from .errors import CommandExitError
from .models import CommandResult, ProcessEvent, ProcessInfo

if TYPE_CHECKING:
    from .session import Session

OutputHandler = Callable[[str], Any]
#: Extra seconds the HTTP read waits beyond a command's own timeout.
READ_MARGIN_S = 30.0


def process_request(cmd: Union[str, Sequence[str]], *, cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None, stdin: Optional[str] = None, timeout_ms: Optional[int] = None, max_output_bytes: Optional[int] = None, tag: Optional[str] = None, keep_stdin: Optional[bool] = None) -> Dict[str, Any]:
    """A string is a shell command line (``bash -l -c``, as E2B runs it); a list is argv."""
    if isinstance(cmd, str):
        body: Dict[str, Any] = {"command": cmd, "shell": True}
    else:
        argv = list(cmd)
        if not argv:
            raise ValueError("cmd must not be empty")
        body = {"command": argv[0], "args": argv[1:]}
    for key, value in (("cwd", cwd), ("env", env), ("stdin", stdin), ("timeoutMs", timeout_ms), ("maxOutputBytes", max_output_bytes), ("tag", tag), ("keepStdin", keep_stdin)):
        if value is not None:
            body[key] = value
    return body


class CommandHandle:
    """A background process: wait for it, stream its output, write its stdin, kill it."""

    def __init__(self, commands: "Commands", info: ProcessInfo) -> None:
        self._commands = commands
        self.pid = info.pid
        self.tag = info.tag
        self.info = info

    @property
    def _selector(self) -> str:
        return str(self.pid)

    def events(self, timeout: Optional[float] = None) -> Iterator[ProcessEvent]:
        """Its output from now on, then its exit (only the exit once it has ended)."""
        res = self._commands._session._core.request("GET", f"{self._commands._base}/processes/{quote(self._selector)}/stream", timeout=timeout or 3600.0)
        yield from sse_events(res.iter_lines())

    def wait(self, on_stdout: Optional[OutputHandler] = None, on_stderr: Optional[OutputHandler] = None, timeout: Optional[float] = None, check: bool = False) -> CommandResult:
        """Blocks until it exits (``timeout`` is the longest silence in seconds), calling the
        handlers with output as it comes; returns its whole output as Kiln kept it."""
        exit_event: Optional[ProcessEvent] = None
        for e in self.events(timeout=timeout):
            if e.type == "stdout" and on_stdout:
                on_stdout(e.data)
            elif e.type == "stderr" and on_stderr:
                on_stderr(e.data)
            elif e.type == "exit":
                exit_event = e
        return self._result(exit_event, check)

    def _result(self, exit_event: Optional[ProcessEvent], check: bool) -> CommandResult:
        """The finished process's result: its exit from the stream, its output as Kiln kept it."""
        info = self._commands.get(self.pid)
        code = info.exit_code if info and info.exit_code is not None else (exit_event.exit_code if exit_event and exit_event.exit_code is not None else -1)
        result = CommandResult(exit_code=code, stdout=info.stdout if info else "", stderr=info.stderr if info else "", pid=self.pid, signal=info.signal if info else "")
        if check and result.exit_code != 0:
            raise CommandExitError(result)
        return result

    def send_stdin(self, data: Union[str, bytes], close: bool = False) -> ProcessInfo:
        """Writes to its stdin (it must have been started with ``keep_stdin=True``)."""
        import base64

        body: Dict[str, Any] = {"data": base64.b64encode(data).decode(), "base64": True} if isinstance(data, bytes) else {"data": data}
        if close:
            body["close"] = True
        return ProcessInfo.from_json(self._commands._session._core.json("POST", f"{self._commands._base}/processes/{quote(self._selector)}/stdin", body))

    def kill(self, signal: str = "SIGKILL") -> ProcessInfo:
        return self._commands.kill(self.pid, signal)


class Commands:
    """``session.commands``: run commands in the session's sandbox."""

    def __init__(self, session: "Session") -> None:
        self._session = session
        self._base: str = f"/api/v1/sessions/{quote(session.id)}"

    @overload
    def run(
        self,
        cmd: Union[str, Sequence[str]],
        *,
        background: Literal[False] = False,
        on_stdout: Optional[OutputHandler] = None,
        on_stderr: Optional[OutputHandler] = None,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        stdin: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        max_output_bytes: Optional[int] = None,
        tag: Optional[str] = None,
        keep_stdin: Optional[bool] = None,
        check: bool = False,
    ) -> CommandResult: ...

    @overload
    def run(
        self,
        cmd: Union[str, Sequence[str]],
        *,
        background: Literal[True],
        on_stdout: Optional[OutputHandler] = None,
        on_stderr: Optional[OutputHandler] = None,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        stdin: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        max_output_bytes: Optional[int] = None,
        tag: Optional[str] = None,
        keep_stdin: Optional[bool] = None,
        check: bool = False,
    ) -> CommandHandle: ...

    def run(
        self,
        cmd: Union[str, Sequence[str]],
        *,
        background: bool = False,
        on_stdout: Optional[OutputHandler] = None,
        on_stderr: Optional[OutputHandler] = None,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        stdin: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        max_output_bytes: Optional[int] = None,
        tag: Optional[str] = None,
        keep_stdin: Optional[bool] = None,
        check: bool = False,
    ) -> Union[CommandResult, CommandHandle]:
        """Runs ``cmd`` (a shell line, or an argv list) and returns a CommandResult; with
        ``on_stdout``/``on_stderr`` the output streams to them as it is written. With
        ``background=True`` it returns a CommandHandle at once. ``timeout_ms`` kills the process
        group (default 300000 for foreground commands, none for background ones)."""
        body = process_request(cmd, cwd=cwd, env=env, stdin=stdin, timeout_ms=timeout_ms, max_output_bytes=max_output_bytes, tag=tag, keep_stdin=keep_stdin)
        if background:
            return CommandHandle(self, ProcessInfo.from_json(self._session._core.json("POST", f"{self._base}/processes", body)))
        if tag is not None or keep_stdin is not None:
            raise ValueError("tag and keep_stdin apply to background processes only (background=True)")
        if on_stdout or on_stderr:
            stdout: List[str] = []
            stderr: List[str] = []
            exit_event: Optional[ProcessEvent] = None
            pid = 0
            for e in self._stream(body):
                if e.type == "start":
                    pid = e.pid
                elif e.type == "stdout":
                    stdout.append(e.data)
                    if on_stdout:
                        on_stdout(e.data)
                elif e.type == "stderr":
                    stderr.append(e.data)
                    if on_stderr:
                        on_stderr(e.data)
                elif e.type == "exit":
                    exit_event = e
            raw = exit_event.raw if exit_event else {}
            result = CommandResult(exit_code=raw.get("exitCode", -1), stdout="".join(stdout), stderr="".join(stderr), pid=pid, signal=raw.get("signal", ""), duration_ms=raw.get("durationMs", 0.0), truncated=bool(raw.get("truncated")), timed_out=bool(raw.get("timedOut")))
        else:
            result = CommandResult.from_json(self._session._core.json("POST", f"{self._base}/process/run", body, timeout=self._read_timeout(timeout_ms)))
        if check and result.exit_code != 0:
            raise CommandExitError(result)
        return result

    def stream(self, cmd: Union[str, Sequence[str]], *, cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None, stdin: Optional[str] = None, timeout_ms: Optional[int] = None, max_output_bytes: Optional[int] = None) -> Generator[ProcessEvent, None, None]:
        """Runs ``cmd`` and yields its events as they happen: start, stdout/stderr, exit.
        Closing the generator early (``break``) closes the stream."""
        return self._stream(process_request(cmd, cwd=cwd, env=env, stdin=stdin, timeout_ms=timeout_ms, max_output_bytes=max_output_bytes))

    def _read_timeout(self, timeout_ms: Optional[int]) -> float:
        own = (timeout_ms if timeout_ms is not None else 300_000) / 1000.0
        return max(self._session._core.config.timeout, own + READ_MARGIN_S)

    def _stream(self, body: Dict[str, Any]) -> Generator[ProcessEvent, None, None]:
        res = self._session._core.request("POST", f"{self._base}/process/stream", json_body=body, timeout=self._read_timeout(body.get("timeoutMs")))
        try:
            yield from sse_events(res.iter_lines())
        finally:
            res.close()

    def list(self) -> List[ProcessInfo]:
        """Background processes, running and finished."""
        return [ProcessInfo.from_json(p) for p in self._session._core.json("GET", f"{self._base}/processes")["processes"]]

    def get(self, pid: int) -> Optional[ProcessInfo]:
        return next((p for p in self.list() if p.pid == pid), None)

    def connect(self, pid_or_tag: Union[int, str]) -> CommandHandle:
        """A handle on a background process by pid, or by the tag it was started with."""
        procs = self.list()
        found = next((p for p in procs if (p.pid == pid_or_tag if isinstance(pid_or_tag, int) else p.tag == pid_or_tag)), None)
        if found is None:
            from .errors import ProcessNotFoundError

            raise ProcessNotFoundError(f"no background process {pid_or_tag!r} in session {self._session.id}", code="ProcessNotFound", status=404)
        return CommandHandle(self, found)

    def kill(self, pid: int, signal: str = "SIGKILL") -> ProcessInfo:
        """Sends ``signal`` to the process and its process group."""
        return ProcessInfo.from_json(self._session._core.json("POST", f"{self._base}/processes/{pid}/signal", {"signal": signal}))
