import re
import unittest

from _support import SessionTest

HI = re.compile(r"[\r\n]hi\r\n")


class PtyTest(SessionTest):
    def test_echo_hi(self) -> None:
        with self.session.pty.create(cols=100, rows=30) as term:
            term.send("echo hi\n")
            # The typed line echoes as "echo hi"; the command's output is "hi" on a line of its own
            # (after \r\n, or after bash's bracketed-paste reset and \r).
            out = term.wait_for(HI, timeout=60)
            self.assertIn("echo hi", out)
            term.resize(120, 40)
            term.send("stty size\n")
            self.assertIn("40 120", term.wait_for("40 120", timeout=60))
            term.send("exit 5\n")
            rest = b""
            while True:
                chunk = term.read(timeout=60)
                if chunk is None:
                    break
                rest += chunk
            self.assertEqual(term.exit_code, 5)

    def test_bytes_both_ways(self) -> None:
        term = self.session.pty.create()
        try:
            term.send(b"printf '\\xe2\\x9c\\x93 ok\\n'\n")
            self.assertIn("\u2713 ok", term.wait_for("\u2713 ok\r\n", timeout=60))
        finally:
            term.close()


if __name__ == "__main__":
    unittest.main()
