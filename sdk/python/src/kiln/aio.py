"""The asyncio client: the same surface as the sync one, awaitable.

Every call runs the shared sync core (one blocking HTTP request or one read of a stream) in a
thread pool of the client's own, so the event loop never blocks on the network; streams are async
generators that read one event per hop into the pool. Output callbacks may be plain functions or
coroutine functions, and run on the event loop.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import os
import re
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Literal, Optional, Sequence, TypeVar, Union, overload

from ._core import PathArg
from .client import Kiln
from .commands import CommandHandle, OutputHandler
from .errors import CommandExitError, KilnError
from .files import WriteData
from .models import CommandResult, FileInfo, FunctionInfo, Invocation, ProcessEvent, ProcessInfo, SessionInfo, SnapshotInfo, Transition, Usage, VolumeInfo
from .pty import Terminal
from .session import Session

T = TypeVar("T")
_DONE = object()


class _Pool:
    def __init__(self, max_workers: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kiln")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def iterate(self, make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        it = await self.run(make)
        try:
            while True:
                item = await self.run(next, it, _DONE)
                if item is _DONE:
                    return
                yield item
        finally:
            close = getattr(it, "close", None)
            if close:
                await self.run(close)


async def _call(handler: Optional[Callable[[str], Any]], data: str) -> None:
    if handler is None:
        return
    out = handler(data)
    if inspect.isawaitable(out):
        await out


class AsyncCommandHandle:
    def __init__(self, pool: _Pool, handle: CommandHandle) -> None:
        self._pool = pool
        self._handle = handle
        self.pid = handle.pid
        self.tag = handle.tag

    def events(self, timeout: Optional[float] = None) -> AsyncIterator[ProcessEvent]:
        return self._pool.iterate(lambda: self._handle.events(timeout))

    async def wait(self, on_stdout: Optional[OutputHandler] = None, on_stderr: Optional[OutputHandler] = None, timeout: Optional[float] = None, check: bool = False) -> CommandResult:
        exit_event: Optional[ProcessEvent] = None
        async for e in self.events(timeout):
            if e.type == "stdout":
                await _call(on_stdout, e.data)
            elif e.type == "stderr":
                await _call(on_stderr, e.data)
            elif e.type == "exit":
                exit_event = e
        return await self._pool.run(self._handle._result, exit_event, check)

    async def send_stdin(self, data: Union[str, bytes], close: bool = False) -> ProcessInfo:
        return await self._pool.run(self._handle.send_stdin, data, close)

    async def kill(self, signal: str = "SIGKILL") -> ProcessInfo:
        return await self._pool.run(self._handle.kill, signal)


class AsyncCommands:
    def __init__(self, pool: _Pool, session: Session) -> None:
        self._pool = pool
        self._sync = session.commands

    @overload
    async def run(self, cmd: Union[str, Sequence[str]], *, background: Literal[False] = False, on_stdout: Optional[OutputHandler] = None, on_stderr: Optional[OutputHandler] = None, check: bool = False, **kw: Any) -> CommandResult: ...

    @overload
    async def run(self, cmd: Union[str, Sequence[str]], *, background: Literal[True], **kw: Any) -> AsyncCommandHandle: ...

    async def run(self, cmd: Union[str, Sequence[str]], *, background: bool = False, on_stdout: Optional[OutputHandler] = None, on_stderr: Optional[OutputHandler] = None, check: bool = False, **kw: Any) -> Union[CommandResult, AsyncCommandHandle]:
        """As Commands.run; handlers (sync or async) are called on the event loop."""
        if background:
            return AsyncCommandHandle(self._pool, await self._pool.run(self._sync.run, cmd, background=True, **kw))
        if not (on_stdout or on_stderr):
            return await self._pool.run(self._sync.run, cmd, check=check, **kw)
        out: List[str] = []
        err: List[str] = []
        last: Dict[str, Any] = {}
        pid = 0
        async for e in self.stream(cmd, **kw):
            if e.type == "start":
                pid = e.pid
            elif e.type == "stdout":
                out.append(e.data)
                await _call(on_stdout, e.data)
            elif e.type == "stderr":
                err.append(e.data)
                await _call(on_stderr, e.data)
            elif e.type == "exit":
                last = e.raw
        result = CommandResult(exit_code=last.get("exitCode", -1), stdout="".join(out), stderr="".join(err), pid=pid, signal=last.get("signal", ""), duration_ms=last.get("durationMs", 0.0), truncated=bool(last.get("truncated")), timed_out=bool(last.get("timedOut")))
        if check and result.exit_code != 0:
            raise CommandExitError(result)
        return result

    def stream(self, cmd: Union[str, Sequence[str]], **kw: Any) -> AsyncIterator[ProcessEvent]:
        return self._pool.iterate(lambda: self._sync.stream(cmd, **kw))

    async def list(self) -> List[ProcessInfo]:
        return await self._pool.run(self._sync.list)

    async def kill(self, pid: int, signal: str = "SIGKILL") -> ProcessInfo:
        return await self._pool.run(self._sync.kill, pid, signal)

    async def connect(self, pid_or_tag: Union[int, str]) -> AsyncCommandHandle:
        return AsyncCommandHandle(self._pool, await self._pool.run(self._sync.connect, pid_or_tag))


class AsyncFiles:
    def __init__(self, pool: _Pool, session: Session) -> None:
        self._pool = pool
        self._sync = session.files

    async def read(self, path: str) -> str:
        return await self._pool.run(self._sync.read, path)

    async def read_bytes(self, path: str) -> bytes:
        return await self._pool.run(self._sync.read_bytes, path)

    def read_stream(self, path: str) -> AsyncIterator[bytes]:
        return self._pool.iterate(lambda: self._sync.read_stream(path))

    async def write(self, path: str, data: WriteData, mode: Optional[int] = None) -> FileInfo:
        return await self._pool.run(self._sync.write, path, data, mode)

    async def upload(self, local_path: PathArg, path: str, mode: Optional[int] = None) -> FileInfo:
        return await self._pool.run(self._sync.upload, local_path, path, mode)

    async def download(self, path: str, local_path: PathArg) -> int:
        return await self._pool.run(self._sync.download, path, local_path)

    async def list(self, path: str = ".") -> List[FileInfo]:
        return await self._pool.run(self._sync.list, path)

    async def stat(self, path: str) -> FileInfo:
        return await self._pool.run(self._sync.stat, path)

    async def exists(self, path: str) -> bool:
        return await self._pool.run(self._sync.exists, path)

    async def make_dir(self, path: str) -> FileInfo:
        return await self._pool.run(self._sync.make_dir, path)

    async def remove(self, path: str, recursive: bool = False) -> bool:
        return await self._pool.run(self._sync.remove, path, recursive)

    async def rename(self, old_path: str, new_path: str) -> FileInfo:
        return await self._pool.run(self._sync.rename, old_path, new_path)


class AsyncTerminal:
    def __init__(self, pool: _Pool, terminal: Terminal) -> None:
        self._pool = pool
        self._sync = terminal

    @property
    def exit_code(self) -> Optional[int]:
        return self._sync.exit_code

    async def send(self, data: Union[str, bytes]) -> None:
        await self._pool.run(self._sync.send, data)

    async def resize(self, cols: int, rows: int) -> None:
        await self._pool.run(self._sync.resize, cols, rows)

    async def read(self, timeout: Optional[float] = None) -> Optional[bytes]:
        return await self._pool.run(self._sync.read, timeout)

    async def wait_for(self, text: Union[str, "re.Pattern[str]"], timeout: float = 30.0) -> str:
        return await self._pool.run(self._sync.wait_for, text, timeout)

    async def close(self) -> None:
        await self._pool.run(self._sync.close)

    async def __aenter__(self) -> "AsyncTerminal":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncPty:
    def __init__(self, pool: _Pool, session: Session) -> None:
        self._pool = pool
        self._sync = session.pty

    async def create(self, cols: int = 80, rows: int = 24) -> AsyncTerminal:
        return AsyncTerminal(self._pool, await self._pool.run(self._sync.create, cols, rows))


class AsyncSession:
    def __init__(self, pool: _Pool, session: Session) -> None:
        self._pool = pool
        self._sync = session
        self.id = session.id
        self.commands = AsyncCommands(pool, session)
        self.files = AsyncFiles(pool, session)
        self.pty = AsyncPty(pool, session)

    @property
    def info(self) -> SessionInfo:
        return self._sync.info

    async def refresh(self) -> SessionInfo:
        return await self._pool.run(self._sync.refresh)

    async def keepalive(self, timeout_ms: Optional[int] = None) -> SessionInfo:
        return await self._pool.run(self._sync.keepalive, timeout_ms)

    async def pause(self) -> Transition:
        return await self._pool.run(self._sync.pause)

    async def resume(self) -> Transition:
        return await self._pool.run(self._sync.resume)

    async def hibernate(self) -> Transition:
        return await self._pool.run(self._sync.hibernate)

    async def usage(self) -> Usage:
        return await self._pool.run(self._sync.usage)

    async def snapshot(self, name: Optional[str] = None) -> SnapshotInfo:
        return await self._pool.run(self._sync.snapshot, name)

    async def fork(self, count: int = 1, **kw: Any) -> List["AsyncSession"]:
        return [AsyncSession(self._pool, s) for s in await self._pool.run(self._sync.fork, count, **kw)]

    async def kill(self) -> bool:
        return await self._pool.run(self._sync.kill)

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()


class AsyncSessions:
    def __init__(self, pool: _Pool, kiln: Kiln) -> None:
        self._pool = pool
        self._sync = kiln.sessions

    async def create(self, template: Optional[str] = None, **kw: Any) -> AsyncSession:
        return AsyncSession(self._pool, await self._pool.run(self._sync.create, template, **kw))

    async def create_from_snapshot(self, snapshot_id: str, template: Optional[str] = None, **kw: Any) -> AsyncSession:
        return AsyncSession(self._pool, await self._pool.run(self._sync.create_from_snapshot, snapshot_id, template, **kw))

    async def connect(self, session_id: str) -> AsyncSession:
        return AsyncSession(self._pool, await self._pool.run(self._sync.connect, session_id))

    async def list(self, template: Optional[str] = None, metadata: Optional[Dict[str, str]] = None) -> List[SessionInfo]:
        return await self._pool.run(self._sync.list, template, metadata)

    async def kill(self, session_id: str) -> bool:
        return await self._pool.run(self._sync.kill, session_id)


class AsyncFunctions:
    def __init__(self, pool: _Pool, kiln: Kiln) -> None:
        self._pool = pool
        self._sync = kiln.functions

    async def deploy(self, directory: PathArg, name: str, **kw: Any) -> FunctionInfo:
        return await self._pool.run(self._sync.deploy, directory, name, **kw)

    async def invoke(self, name: str, event: Any = None, **kw: Any) -> Invocation:
        return await self._pool.run(self._sync.invoke, name, event, **kw)

    async def get(self, name: str, qualifier: Optional[str] = None) -> FunctionInfo:
        return await self._pool.run(self._sync.get, name, qualifier)

    async def list(self) -> List[FunctionInfo]:
        return await self._pool.run(self._sync.list)

    async def delete(self, name: str, qualifier: Optional[str] = None) -> bool:
        return await self._pool.run(self._sync.delete, name, qualifier)


class AsyncSnapshots:
    def __init__(self, pool: _Pool, kiln: Kiln) -> None:
        self._pool = pool
        self._sync = kiln.snapshots

    async def list(self) -> List[SnapshotInfo]:
        return await self._pool.run(self._sync.list)

    async def get(self, snapshot_id: str) -> SnapshotInfo:
        return await self._pool.run(self._sync.get, snapshot_id)

    async def delete(self, snapshot_id: str) -> bool:
        return await self._pool.run(self._sync.delete, snapshot_id)


class AsyncVolumes:
    def __init__(self, pool: _Pool, kiln: Kiln) -> None:
        self._pool = pool
        self._sync = kiln.volumes

    async def create(self, name: str, size_mb: int, *, idempotency_key: Optional[str] = None, mode: Optional[str] = None) -> VolumeInfo:
        return await self._pool.run(functools.partial(self._sync.create, name, size_mb, idempotency_key=idempotency_key, mode=mode))

    async def sync(self, session_id: str, name: str) -> VolumeInfo:
        return await self._pool.run(self._sync.sync, session_id, name)

    async def list(self) -> List[VolumeInfo]:
        return await self._pool.run(self._sync.list)

    async def get(self, name: str) -> VolumeInfo:
        return await self._pool.run(self._sync.get, name)

    async def delete(self, name: str) -> bool:
        return await self._pool.run(self._sync.delete, name)


class AsyncKiln:
    """``async with AsyncKiln(url, api_key) as kiln:`` — the same options as Kiln, plus
    ``max_workers``: threads for requests in flight (each open stream or terminal read holds one
    while it waits)."""

    def __init__(self, url: Optional[str] = None, api_key: Optional[str] = None, *, max_workers: int = 32, timeout: float = 60.0, max_retries: int = 4, backoff: float = 0.5, max_backoff: float = 10.0, ssl_context: Optional[ssl.SSLContext] = None, headers: Optional[Dict[str, str]] = None, on_retry: Optional[Callable[[KilnError, int, float], None]] = None) -> None:
        self._kiln = Kiln(url, api_key, timeout=timeout, max_retries=max_retries, backoff=backoff, max_backoff=max_backoff, ssl_context=ssl_context, headers=headers, on_retry=on_retry)
        self._pool = _Pool(max_workers)
        self.config = self._kiln.config
        self.sessions = AsyncSessions(self._pool, self._kiln)
        self.functions = AsyncFunctions(self._pool, self._kiln)
        self.snapshots = AsyncSnapshots(self._pool, self._kiln)
        self.volumes = AsyncVolumes(self._pool, self._kiln)

    async def health(self) -> Any:
        return await self._pool.run(self._kiln.health)

    async def close(self) -> None:
        """Stops the client's threads (waiting for calls in flight)."""
        await asyncio.get_running_loop().run_in_executor(None, functools.partial(self._pool.executor.shutdown, wait=True))

    async def __aenter__(self) -> "AsyncKiln":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
