"""The request core both clients share: configuration, request building, the HTTP transport
(http.client), retries with backoff on 429/503 honouring Retry-After, and error mapping.

The sync client calls it directly; the asyncio client runs the same calls in a thread pool
(aio.py), so there is one implementation of every request.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, Mapping, Optional, Tuple, Union

#: A local path argument.
PathArg = Union[str, "os.PathLike[str]"]

from .errors import KilnConnectionError, KilnError, KilnTimeoutError, error_from_response

__version__ = "0.1.0"

#: What a request body may be: bytes, a binary file (streamed from its current position) or an
#: iterable of byte chunks (sent with chunked transfer encoding).
Body = Union[None, bytes, bytearray, memoryview, BinaryIO, Iterable[bytes]]

CHUNK_BYTES = 1 << 20


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: Kiln never sends one; fall back to backoff


@dataclass
class Config:
    """Connection settings. ``timeout`` is seconds per socket operation (connect, each read)."""

    url: str
    api_key: Optional[str] = None
    timeout: float = 60.0
    #: Attempts after the first for a retryable error (429, 503, connection refused).
    max_retries: int = 4
    #: First backoff delay (s), doubled per attempt with jitter, at most ``max_backoff``.
    backoff: float = 0.5
    max_backoff: float = 10.0
    #: Longest Retry-After the client waits out; a longer one raises at once.
    max_retry_after: float = 60.0
    ssl_context: Optional[ssl.SSLContext] = None
    headers: Dict[str, str] = field(default_factory=dict)
    #: Called before each retry with (error, attempt number from 1, delay in seconds).
    on_retry: Optional[Callable[[KilnError, int, float], None]] = None

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"url must be http(s)://host[:port][/prefix]; got {self.url!r}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive seconds; got {self.timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0; got {self.max_retries}")
        self.scheme = parsed.scheme
        self.host = parsed.hostname
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.prefix = parsed.path.rstrip("/")

    @classmethod
    def from_env(cls, url: Optional[str] = None, api_key: Optional[str] = None, **kw: Any) -> "Config":
        """``url`` and ``api_key`` default to KILN_URL (else http://127.0.0.1:8080) and KILN_API_KEY."""
        return cls(url=url or os.environ.get("KILN_URL") or "http://127.0.0.1:8080", api_key=api_key if api_key is not None else os.environ.get("KILN_API_KEY"), **kw)

    def auth_headers(self) -> Dict[str, str]:
        h = {"user-agent": f"kiln-sdk-python/{__version__}", **self.headers}
        if self.api_key:
            h["authorization"] = f"Bearer {self.api_key}"
        return h

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.ssl_context or ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


def path_of(path: str, query: Optional[Mapping[str, Any]] = None) -> str:
    """``path`` with its query string; None values are left out, booleans are true/false."""
    if not query:
        return path
    pairs = [(k, ("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in query.items() if v is not None]
    return path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")


def quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


class Response:
    """An open HTTP response; read it whole (``read``/``json``) or stream it, then ``close``."""

    def __init__(self, conn: http.client.HTTPConnection, raw: http.client.HTTPResponse) -> None:
        self._conn = conn
        self._raw = raw
        self.status = raw.status
        self.headers = {k.lower(): v for k, v in raw.getheaders()}

    def read(self) -> bytes:
        try:
            return self._raw.read()
        except socket.timeout as e:
            raise KilnTimeoutError(f"Kiln sent no data within the timeout: {e}", code="Timeout") from e
        finally:
            self.close()

    def json(self) -> Any:
        data = self.read()
        return json.loads(data) if data else None

    def iter_bytes(self, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        try:
            while True:
                chunk = self._raw.read(size)
                if not chunk:
                    return
                yield chunk
        except socket.timeout as e:
            raise KilnTimeoutError(f"Kiln sent no data within the timeout: {e}", code="Timeout") from e
        except (http.client.IncompleteRead, ConnectionError) as e:
            raise KilnConnectionError(f"the response was cut off: {e}", code="ConnectionError") from e
        finally:
            self.close()

    def iter_lines(self) -> Iterator[bytes]:
        try:
            while True:
                line = self._raw.readline()
                if not line:
                    return
                yield line
        except socket.timeout as e:
            raise KilnTimeoutError(f"Kiln sent no data within the timeout: {e}", code="Timeout") from e
        except (http.client.IncompleteRead, ConnectionError) as e:
            raise KilnConnectionError(f"the stream was cut off: {e}", code="ConnectionError") from e
        finally:
            self.close()

    def close(self) -> None:
        # Closing the connection (not just the response) stops a stream the server is still writing.
        self._raw.close()
        self._conn.close()


def _send_body(conn: http.client.HTTPConnection, body: Body, chunked: bool) -> None:
    """Sends the body; ``chunked`` frames each piece (RFC 9112 chunked coding) when its length is unknown."""
    if body is None:
        return
    if isinstance(body, (bytes, bytearray, memoryview)):
        conn.send(bytes(body))
        return
    if hasattr(body, "read"):
        reader: BinaryIO = body  # type: ignore[assignment]
        pieces: Iterable[bytes] = iter(lambda: reader.read(CHUNK_BYTES), b"")
    else:
        pieces = body
    for piece in pieces:
        if piece:
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
    if chunked:
        conn.send(b"0\r\n\r\n")


def _length_of(body: Body) -> Optional[int]:
    if body is None:
        return 0
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body)
    f, pos = _rewind_point(body)
    if f is None or pos is None:
        return None
    try:
        end = f.seek(0, os.SEEK_END)
        f.seek(pos)
        return end - pos
    except (OSError, ValueError):
        return None


def _rewind_point(body: Body) -> Tuple[Optional[BinaryIO], Optional[int]]:
    """A file body that can be sent again from where it starts, and that position (a pipe or a
    socket cannot: it is sent once)."""
    if not (hasattr(body, "seekable") and hasattr(body, "tell")):
        return None, None
    f: BinaryIO = body  # type: ignore[assignment]
    try:
        return (f, f.tell()) if f.seekable() else (None, None)
    except (OSError, ValueError):
        return None, None


class Core:
    """Sends requests with retries and typed errors. Thread-safe: one connection per request."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._sleep = time.sleep

    def _open(self, method: str, path: str, headers: Mapping[str, str], body: Body, timeout: float) -> Response:
        conn = self.config.connection(timeout)
        sent_body = False
        try:
            conn.putrequest(method, self.config.prefix + path, skip_accept_encoding=True)
            length = _length_of(body)
            all_headers = {**self.config.auth_headers(), **headers}
            if length is None:
                all_headers["transfer-encoding"] = "chunked"
            elif method not in ("GET", "HEAD") or length:
                all_headers["content-length"] = str(length)
            for k, v in all_headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            try:
                _send_body(conn, body, chunked=length is None)
                sent_body = True
            except (BrokenPipeError, ConnectionResetError):
                # The server may have answered (an error, e.g. 413 or 429) and closed before reading
                # all of the body: that answer is the one to report.
                pass
            raw = conn.getresponse()
        except socket.timeout as e:
            conn.close()
            raise KilnTimeoutError(f"no answer from Kiln at {self.config.url} within {timeout} s ({method} {path.split('?')[0]})", code="Timeout") from e
        except ConnectionRefusedError as e:
            conn.close()
            raise _Refused(f"cannot connect to Kiln at {self.config.url}: {e}", code="ConnectionRefused") from e
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            what = "" if sent_body else " while sending the body"
            raise KilnConnectionError(f"connection to Kiln at {self.config.url} failed{what}: {e}", code="ConnectionError") from e
        return Response(conn, raw)

    def request(self, method: str, path: str, *, json_body: Any = None, body: Body = None, headers: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None) -> Response:
        """Sends one request and returns the open response of a 2xx answer; raises the typed
        error otherwise. Retries 429/503 and refused connections, rewinding a seekable body; a
        body that cannot be rewound (an iterator) is sent once."""
        h: Dict[str, str] = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            h.setdefault("content-type", "application/json")
        seekable, start = _rewind_point(body)
        rewindable = body is None or isinstance(body, (bytes, bytearray, memoryview)) or start is not None
        t = timeout if timeout is not None else self.config.timeout
        attempt = 0
        while True:
            if seekable is not None and start is not None:
                seekable.seek(start)
            try:
                res = self._open(method, path, h, body, t)
            except _Refused as e:
                err: KilnError = KilnConnectionError(e.message, code=e.code)
                if attempt >= self.config.max_retries or not rewindable:
                    raise err from e
                self._wait(err, attempt := attempt + 1)
                continue
            # 3xx is an error too: following a redirect would send the API key to another host.
            if res.status < 300:
                return res
            err = error_from_response(res.status, res.read(), _retry_after(res.headers.get("retry-after")))
            if not err.retryable or attempt >= self.config.max_retries or not rewindable:
                raise err
            if err.retry_after is not None and err.retry_after > self.config.max_retry_after:
                raise err
            self._wait(err, attempt := attempt + 1)

    def _wait(self, err: KilnError, attempt: int) -> None:
        if err.retry_after is not None:
            # Retry-After is the server's word; a little jitter spreads clients that were refused together.
            delay = err.retry_after + random.uniform(0, 0.25)
        else:
            delay = min(self.config.max_backoff, self.config.backoff * (2 ** (attempt - 1))) * random.uniform(0.5, 1.0)
        if self.config.on_retry:
            self.config.on_retry(err, attempt, delay)
        self._sleep(delay)

    def json(self, method: str, path: str, body: Any = None, *, timeout: Optional[float] = None, headers: Optional[Mapping[str, str]] = None) -> Any:
        return self.request(method, path, json_body=body, timeout=timeout, headers=headers).json()


class _Refused(KilnError):
    """Internal: the connection was refused, so nothing was sent and a retry is safe."""
