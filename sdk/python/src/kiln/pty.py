"""A terminal in a session over Kiln's PTY WebSocket (``GET /api/v1/sessions/{id}/pty``).

Binary frames carry terminal bytes both ways; text frames carry JSON control messages:
``{"type":"resize","cols","rows"}`` from us, ``{"type":"exit","code"}`` and
``{"type":"error","code","message"}`` from Kiln (control-plane/src/api/routes/sessions-pty.ts).
"""
from __future__ import annotations

import json
import re
import socket
import time
from typing import TYPE_CHECKING, Iterator, Optional, Union

from ._core import path_of, quote
from ._ws import OP_BINARY, WebSocket, WebSocketClosed
from .errors import KilnError, KilnTimeoutError, error_class

if TYPE_CHECKING:
    from .session import Session


class Terminal:
    """An open terminal. ``read`` returns output bytes; ``exit_code`` is set once the shell ends."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self.exit_code: Optional[int] = None
        self.error: Optional[KilnError] = None

    def send(self, data: Union[str, bytes]) -> None:
        """Types ``data`` (a str is sent as UTF-8)."""
        self._ws.send_binary(data.encode("utf-8") if isinstance(data, str) else data)

    def resize(self, cols: int, rows: int) -> None:
        self._ws.send_text(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    def read(self, timeout: Optional[float] = None) -> Optional[bytes]:
        """The next output bytes; None once the terminal has ended. Raises KilnTimeoutError when
        ``timeout`` seconds pass with no output, and the server's error if it reported one."""
        while True:
            try:
                op, payload = self._ws.recv(timeout)
            except socket.timeout as e:
                raise KilnTimeoutError(f"the terminal printed nothing within {timeout} s", code="Timeout") from e
            except WebSocketClosed:
                if self.error:
                    raise self.error
                return None
            if op == OP_BINARY:
                return payload
            try:
                msg = json.loads(payload.decode("utf-8"))
            except ValueError:
                continue  # not a control message we know; the protocol only sends JSON
            if msg.get("type") == "exit":
                self.exit_code = msg.get("code")
            elif msg.get("type") == "error":
                code = str(msg.get("code", "TerminalError"))
                self.error = error_class(code, 0)(str(msg.get("message", "")), code=code)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self.read()
            if chunk is None:
                return
            yield chunk

    def wait_for(self, text: Union[str, "re.Pattern[str]"], timeout: float = 30.0) -> str:
        """Reads until the output contains ``text`` (a string, or a compiled regular expression
        searched in the output); returns everything read. Raises KilnTimeoutError (with the
        output so far) after ``timeout`` seconds."""
        seen = ""
        deadline = time.monotonic() + timeout

        def found(s: str) -> bool:
            return text.search(s) is not None if isinstance(text, re.Pattern) else text in s

        while not found(seen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise KilnTimeoutError(f"the terminal did not print {text!r} within {timeout} s; it printed: {seen[-2000:]!r}", code="Timeout")
            try:
                chunk = self.read(timeout=left)
            except KilnTimeoutError:
                continue
            if chunk is None:
                raise KilnError(f"the terminal ended before printing {text!r}; it printed: {seen[-2000:]!r}", code="TerminalEnded")
            seen += chunk.decode("utf-8", "replace")
        return seen

    def close(self) -> None:
        """Closes the terminal (Kiln ends its shell)."""
        self._ws.close()

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Pty:
    """``session.pty``: open terminals in the session."""

    def __init__(self, session: "Session") -> None:
        self._session = session

    def create(self, cols: int = 80, rows: int = 24) -> Terminal:
        cfg = self._session._core.config
        path = cfg.prefix + path_of(f"/api/v1/sessions/{quote(self._session.id)}/pty", {"cols": cols, "rows": rows})
        headers = {k: v for k, v in cfg.auth_headers().items() if k != "user-agent"}
        return Terminal(WebSocket.connect(cfg.scheme, cfg.host, cfg.port, path, headers, cfg.timeout, cfg.ssl_context))
