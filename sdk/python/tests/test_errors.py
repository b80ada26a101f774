import unittest

from _support import SessionTest, client, env
from kiln import (
    ERROR_MAP,
    AuthenticationError,
    InvalidRequestError,
    Kiln,
    KilnConnectionError,
    KilnError,
    NotFoundError,
    PathNotFoundError,
    PathOutsideWorkspaceError,
    Session,
    ProcessNotFoundError,
    SessionNotFoundError,
    TemplateNotFoundError,
)
from kiln.errors import error_from_response


class ErrorTableTest(unittest.TestCase):
    def test_table(self) -> None:
        for code, cls in ERROR_MAP.items():
            self.assertTrue(issubclass(cls, KilnError), code)
        e = error_from_response(404, b'{"error":{"code":"SessionNotFound","message":"gone","data":{"sessionId":"s1"}}}')
        assert isinstance(e, SessionNotFoundError), e
        self.assertEqual(e.session_id, "s1")
        # A code this SDK does not know yet falls back to its status (or its NotFound suffix).
        self.assertIsInstance(error_from_response(404, b'{"error":{"code":"WidgetNotFound","message":"x"}}'), NotFoundError)
        self.assertIsInstance(error_from_response(400, b'{"error":{"code":"BrandNew","message":"x"}}'), InvalidRequestError)
        self.assertEqual(error_from_response(502, b"<html>bad gateway</html>").code, "Http502")


class ApiErrorsTest(SessionTest):
    def test_typed_errors_from_kiln(self) -> None:
        with self.assertRaises(SessionNotFoundError) as cm:
            self.kiln.sessions.connect("ses_does_not_exist")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "SessionNotFound"))
        with self.assertRaises(TemplateNotFoundError):
            self.kiln.sessions.create(template="no-such-template")
        with self.assertRaises(PathOutsideWorkspaceError) as out:
            self.session.files.read("../../etc/passwd")
        self.assertEqual(out.exception.status, 400)
        self.assertIsInstance(out.exception, InvalidRequestError)
        with self.assertRaises(PathNotFoundError):
            self.session.files.read("nothing-here.txt")
        with self.assertRaises(ProcessNotFoundError):
            self.session.commands.kill(999_999)
        with self.assertRaises(InvalidRequestError) as bad:
            self.session.commands.run(["sh", "-c", "true"], timeout_ms=0)
        self.assertIn("timeoutMs", bad.exception.message)

    def test_bad_key_and_other_tenant(self) -> None:
        with self.assertRaises(AuthenticationError) as cm:
            Kiln(env("KILN_URL"), "kiln_wrong_key", max_retries=0).sessions.list()
        self.assertEqual(cm.exception.status, 401)
        # Another tenant's key sees this tenant's session as not existing.
        other = Kiln(env("KILN_URL"), env("KILN_RATE_API_KEY"), timeout=120.0)
        with self.assertRaises(SessionNotFoundError):
            other.sessions.connect(self.session.id)
        # The terminal's WebSocket handshake refuses the wrong key with the same typed error.
        bad = Kiln(env("KILN_URL"), "kiln_wrong_key", max_retries=0)
        with self.assertRaises(AuthenticationError):
            Session(bad._core, self.session.info).pty.create()

    def test_pty_of_unknown_session_is_typed(self) -> None:
        ghost = client().sessions.connect(self.session.id)
        ghost.id = "ses_does_not_exist"
        with self.assertRaises(SessionNotFoundError):
            ghost.pty.create()

    def test_unreachable(self) -> None:
        with self.assertRaises(KilnConnectionError):
            Kiln("http://127.0.0.1:9", "k", max_retries=1, backoff=0.01).sessions.list()


if __name__ == "__main__":
    unittest.main()
