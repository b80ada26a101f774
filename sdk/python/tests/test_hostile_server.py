"""The client against servers that misbehave: it must not hand the API key to a host a redirect
names, nor take unbounded memory from a WebSocket frame a server claims is huge."""
import http.server
import socket
import threading
import unittest
from typing import List

from kiln import Kiln, KilnError, KilnTimeoutError
from kiln._core import Core, Config
from kiln._ws import WebSocket, WebSocketClosed
from kiln.models import SessionInfo
from kiln.session import Session


class _Server:
    def __init__(self, handler: type) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RedirectTest(unittest.TestCase):
    def test_redirect_is_not_followed(self) -> None:
        seen: List[str] = []

        class Other(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("authorization", ""))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        other = _Server(Other)
        self.addCleanup(other.close)

        class Redirect(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(307)
                self.send_header("location", other.url + self.path)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        redirect = _Server(Redirect)
        self.addCleanup(redirect.close)
        with self.assertRaises(KilnError) as cm:
            Kiln(redirect.url, "secret-key").sessions.list()
        self.assertEqual(cm.exception.status, 307)
        self.assertEqual(seen, [], "the other host never saw a request, let alone the key")


class SilentServerTest(unittest.TestCase):
    def test_no_answer_is_a_timeout(self) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts (in the kernel) and never answers
        self.addCleanup(listener.close)
        kiln = Kiln(f"http://127.0.0.1:{listener.getsockname()[1]}", "k", timeout=0.5, max_retries=0)
        with self.assertRaises(KilnTimeoutError) as cm:
            kiln.sessions.list()
        self.assertIn("within 0.5 s", cm.exception.message)


class HugeFrameTest(unittest.TestCase):
    def test_frame_over_the_cap_is_refused_without_reading_it(self) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                req = b""
                while b"\r\n\r\n" not in req:
                    req += conn.recv(4096)
                import base64, hashlib

                key = [l.split(b":", 1)[1].strip() for l in req.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")][0]
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                # A binary frame that claims 1 TiB.
                conn.sendall(bytes([0x82, 127]) + (1 << 40).to_bytes(8, "big"))
                try:
                    conn.recv(1024)
                except OSError:
                    pass

        threading.Thread(target=serve, daemon=True).start()
        cfg = Config(url=f"http://127.0.0.1:{port}", api_key="k")
        term = Session(Core(cfg), SessionInfo.from_json({"id": "s1"})).pty.create()
        with self.assertRaises(WebSocketClosed) as cm:
            term._ws.recv(timeout=10)
        self.assertEqual(cm.exception.close_code, 1009)
        self.assertIsInstance(term._ws, WebSocket)


if __name__ == "__main__":
    unittest.main()
