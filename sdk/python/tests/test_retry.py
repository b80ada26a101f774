import http.server
import threading
import time
import unittest
from typing import List, Tuple

from _support import env
from kiln import Kiln, KilnError, QuotaExceededError, ServiceUnavailableError


class RateLimitRetryTest(unittest.TestCase):
    """KILN_RATE_API_KEY's tenant has a requestsPerSecond quota of 2 (a burst of 2, then 2/s)."""

    def test_429_is_retried_after_retry_after(self) -> None:
        retries: List[Tuple[KilnError, int, float]] = []
        kiln = Kiln(env("KILN_URL"), env("KILN_RATE_API_KEY"), timeout=120.0, max_retries=8, on_retry=lambda e, n, d: retries.append((e, n, d)))
        for _ in range(8):
            self.assertIsInstance(kiln.sessions.list(), list)
        self.assertGreater(len(retries), 0, "8 requests at once must pass a quota of 2/s only by retrying")
        for err, attempt, delay in retries:
            assert isinstance(err, QuotaExceededError), err
            self.assertEqual((err.status, err.quota), (429, "requestsPerSecond"))
            self.assertEqual(err.retry_after, 1.0)
            self.assertGreaterEqual(delay, 1.0, "the client waits at least Retry-After")
            self.assertGreaterEqual(attempt, 1)

    def test_429_raised_when_retries_run_out(self) -> None:
        kiln = Kiln(env("KILN_URL"), env("KILN_RATE_API_KEY"), max_retries=0)
        time.sleep(1.5)  # let the bucket refill from the test before
        with self.assertRaises(QuotaExceededError) as cm:
            for _ in range(20):
                kiln.sessions.list()
        self.assertTrue(cm.exception.retryable)
        self.assertEqual(cm.exception.data.get("limit"), 2)


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 with Retry-After to the first `fail` requests, then 200 (a stand-in for a Kiln
    whose Redis is briefly down, which a test cannot cause in a shared Kiln without hurting others)."""

    fail = 2
    seen: List[float] = []

    def do_GET(self) -> None:
        _Flaky.seen.append(time.monotonic())
        if len(_Flaky.seen) <= _Flaky.fail:
            body = b'{"error":{"code":"ServiceUnavailable","message":"redis is unavailable: down; retry shortly","data":{"retryAfterSeconds":0}}}'
            self.send_response(503)
            self.send_header("retry-after", "0")
        else:
            body = b'{"sessions":[]}'
            self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class ServiceUnavailableRetryTest(unittest.TestCase):
    def setUp(self) -> None:
        _Flaky.seen = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def test_503_retried_then_succeeds(self) -> None:
        self.assertEqual(Kiln(self.url, "k", max_retries=3).sessions.list(), [])
        self.assertEqual(len(_Flaky.seen), 3)

    def test_503_raised_without_retries(self) -> None:
        with self.assertRaises(ServiceUnavailableError) as cm:
            Kiln(self.url, "k", max_retries=1).sessions.list()
        self.assertEqual(cm.exception.status, 503)
        self.assertEqual(len(_Flaky.seen), 2)


if __name__ == "__main__":
    unittest.main()
