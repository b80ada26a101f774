"""A minimal RFC 6455 WebSocket client on the standard library, for Kiln's terminal route.

Only what the terminal needs: the opening handshake (with the API key header), masked client
frames, text and binary messages (fragmented or not), ping/pong and the closing handshake.
No extensions (no permessage-deflate) and no subprotocols are negotiated.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import threading
from typing import Mapping, Optional, Tuple

from .errors import KilnConnectionError, KilnError, KilnTimeoutError, error_from_response

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Largest message accepted from the server (Kiln's own limit is 1 MiB per frame).
MAX_MESSAGE = 16 << 20


class WebSocketClosed(KilnError):
    """The WebSocket is closed; ``close_code`` is the server's status code, if it sent one."""

    def __init__(self, close_code: Optional[int], reason: str = "") -> None:
        super().__init__(f"websocket closed ({close_code}{': ' + reason if reason else ''})", code="WebSocketClosed")
        self.close_code = close_code
        self.reason = reason


class WebSocket:
    """A connected client. ``recv`` may run in one thread while ``send_*`` run in another."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        self._buf = b""
        self.closed = False
        self.close_code: Optional[int] = None

    @classmethod
    def connect(cls, scheme: str, host: str, port: int, path: str, headers: Mapping[str, str], timeout: float, ssl_context: Optional[ssl.SSLContext] = None) -> "WebSocket":
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            if scheme in ("https", "wss"):
                sock = (ssl_context or ssl.create_default_context()).wrap_socket(sock, server_hostname=host)
        except socket.timeout as e:
            raise KilnTimeoutError(f"cannot connect to {host}:{port} within {timeout} s", code="Timeout") from e
        except OSError as e:
            raise KilnConnectionError(f"cannot connect to {host}:{port}: {e}", code="ConnectionError") from e
        key = base64.b64encode(os.urandom(16)).decode()
        host_header = host if port in (80, 443) else f"{host}:{port}"
        lines = [f"GET {path} HTTP/1.1", f"Host: {host_header}", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            # Read the answer's head ourselves: bytes after it (frames the server sent at once)
            # must stay ours, which a buffered HTTP parser would swallow.
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(4096)
                if not chunk or len(buf) > 65536:
                    raise KilnConnectionError("WebSocket handshake: the server closed or sent no end of headers", code="ConnectionError")
                buf += chunk
            head, rest = buf.split(b"\r\n\r\n", 1)
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ")[1])
            got = {}
            for line in header_lines:
                k, _, v = line.partition(":")
                got[k.strip().lower()] = v.strip()
            if status != 101:
                length = int(got.get("content-length", "0") or 0)
                while len(rest) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                sock.close()
                raise error_from_response(status, rest[:length] if length else rest)
        except socket.timeout as e:
            sock.close()
            raise KilnTimeoutError(f"no WebSocket handshake answer within {timeout} s", code="Timeout") from e
        except (OSError, ValueError, IndexError) as e:
            sock.close()
            raise KilnConnectionError(f"WebSocket handshake failed: {e}", code="ConnectionError") from e
        expected = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if got.get("sec-websocket-accept") != expected:
            sock.close()
            raise KilnConnectionError("WebSocket handshake answered a wrong Sec-WebSocket-Accept", code="ConnectionError")
        ws = cls(sock)
        ws._buf = rest
        sock.settimeout(None)
        return ws

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        # Mask with int arithmetic: far faster than a per-byte loop in pure Python.
        m = int.from_bytes((mask * (n // 4 + 1))[:n], "big") if n else 0
        masked = (int.from_bytes(payload, "big") ^ m).to_bytes(n, "big") if n else b""
        with self._send_lock:
            if self.closed:
                raise WebSocketClosed(self.close_code)
            try:
                self._sock.sendall(header + mask + masked)
            except OSError as e:
                raise KilnConnectionError(f"WebSocket send failed: {e}", code="ConnectionError") from e

    def send_binary(self, data: bytes) -> None:
        self._send_frame(OP_BINARY, data)

    def send_text(self, text: str) -> None:
        self._send_frame(OP_TEXT, text.encode("utf-8"))

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                chunk = self._sock.recv(max(65536, n - len(self._buf)))
            except socket.timeout:
                raise
            except OSError as e:
                raise WebSocketClosed(self.close_code, str(e)) from e
            if not chunk:
                self.closed = True
                raise WebSocketClosed(self.close_code, "connection ended")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_frame(self) -> Tuple[bool, int, bytes]:
        b0, b1 = self._read_exact(2)
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read_exact(8))
        if n > MAX_MESSAGE:
            self.close(1009)
            raise WebSocketClosed(1009, f"server frame of {n} bytes is over {MAX_MESSAGE}")
        mask = self._read_exact(4) if masked else b""
        payload = self._read_exact(n)
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload

    def recv(self, timeout: Optional[float] = None) -> Tuple[int, bytes]:
        """The next message as (OP_TEXT or OP_BINARY, payload). Raises WebSocketClosed at the end
        and socket.timeout when ``timeout`` seconds pass without a whole message."""
        self._sock.settimeout(timeout)
        message_op, parts, size = None, [], 0
        while True:
            fin, op, payload = self._read_frame()
            if op == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                try:
                    self._send_frame(OP_CLOSE, payload[:2])
                except KilnError:
                    pass  # the peer may be gone already; closing is all that is left to do
                self._shutdown()
                raise WebSocketClosed(self.close_code, reason)
            if op in (OP_TEXT, OP_BINARY):
                message_op, parts, size = op, [payload], len(payload)
            elif op == OP_CONT and message_op is not None:
                parts.append(payload)
                size += len(payload)
            if size > MAX_MESSAGE:
                self.close(1009)
                raise WebSocketClosed(1009, "message too big")
            if fin and message_op is not None:
                return message_op, b"".join(parts)

    def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        try:
            self._send_frame(OP_CLOSE, struct.pack("!H", code))
        except KilnError:
            pass  # already gone: nothing to tell the peer
        self._shutdown()

    def _shutdown(self) -> None:
        self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass  # closing a dead socket: nothing more to release
