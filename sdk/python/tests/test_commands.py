import time
import unittest
from typing import List

from _support import SessionTest, TEMPLATE, client
from kiln import CommandExitError, CommandHandle, ProcessEvent


class SessionsTest(unittest.TestCase):
    def test_create_list_connect_kill(self) -> None:
        kiln = client()
        s = kiln.sessions.create(template=TEMPLATE, metadata={"suite": "sdk-python", "marker": "list"})
        try:
            self.assertTrue(s.id)
            self.assertEqual(s.info.template, TEMPLATE)
            self.assertEqual(s.info.status, "running")
            ids = [x.id for x in kiln.sessions.list(metadata={"marker": "list"})]
            self.assertIn(s.id, ids)
            again = kiln.sessions.connect(s.id)
            self.assertEqual(again.info.metadata["marker"], "list")
            self.assertGreater(s.keepalive(timeout_ms=600_000).expires_at, "")
        finally:
            self.assertTrue(s.kill())
        self.assertFalse(s.kill(), "a second kill finds nothing")
        self.assertNotIn(s.id, [x.id for x in kiln.sessions.list(metadata={"marker": "list"})])

    def test_context_manager_kills(self) -> None:
        kiln = client()
        with kiln.sessions.create(template=TEMPLATE) as s:
            sid = s.id
        self.assertFalse(kiln.sessions.kill(sid))


class CommandsTest(SessionTest):
    def test_run(self) -> None:
        r = self.session.commands.run("echo hello; echo oops >&2; exit 3")
        self.assertEqual((r.exit_code, r.stdout, r.stderr), (3, "hello\n", "oops\n"))
        argv = self.session.commands.run(["python3", "-c", "import sys; print(sys.argv[1])", "a b"])
        self.assertEqual(argv.stdout, "a b\n")
        env = self.session.commands.run("echo $GREETING from $(pwd)", env={"GREETING": "hi"})
        self.assertEqual(env.stdout, "hi from /workspace\n")
        self.assertEqual(self.session.commands.run("cat", stdin="piped").stdout, "piped")
        with self.assertRaises(CommandExitError) as cm:
            self.session.commands.run("exit 7", check=True)
        self.assertEqual(cm.exception.result.exit_code, 7)

    def test_timeout_kills(self) -> None:
        r = self.session.commands.run("sleep 30", timeout_ms=500)
        self.assertTrue(r.timed_out)
        self.assertNotEqual(r.exit_code, 0)

    def test_callbacks_stream_output_as_it_comes(self) -> None:
        seen = []
        started = time.monotonic()
        r = self.session.commands.run(
            "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done",
            on_stdout=lambda d: seen.append(("out", d, time.monotonic() - started)),
            on_stderr=lambda d: seen.append(("err", d, time.monotonic() - started)),
        )
        self.assertEqual(r.exit_code, 0)
        self.assertEqual(r.stdout, "out1\nout2\nout3\n")
        self.assertEqual(r.stderr, "err1\nerr2\nerr3\n")
        outs = [d for kind, d, _ in seen if kind == "out"]
        self.assertEqual("".join(outs), "out1\nout2\nout3\n")
        # Streamed, not delivered at the end: the first line arrived before the last was written.
        first = next(t for kind, d, t in seen if d.startswith("out1"))
        last = next(t for kind, d, t in seen if "out3" in d)
        self.assertLess(first, last)

    def test_stream_generator(self) -> None:
        events = list(self.session.commands.stream(["sh", "-c", "echo a; sleep 0.2; echo b >&2; exit 4"]))
        kinds = [e.type for e in events]
        self.assertEqual(kinds[0], "start")
        self.assertGreater(events[0].pid, 0)
        self.assertEqual(kinds[-1], "exit")
        self.assertEqual(events[-1].exit_code, 4)
        self.assertEqual("".join(e.data for e in events if e.type == "stdout"), "a\n")
        self.assertEqual("".join(e.data for e in events if e.type == "stderr"), "b\n")

    def test_stream_closed_early_stops_reading(self) -> None:
        gen = self.session.commands.stream("for i in $(seq 1 100); do echo line$i; sleep 0.1; done")
        got = []
        for e in gen:
            if e.type == "stdout":
                got.append(e.data)
                break
        gen.close()
        self.assertTrue(got[0].startswith("line1"))
        # The session still works after a stream was abandoned.
        self.assertEqual(self.session.commands.run("echo still").stdout, "still\n")

    def test_background_process(self) -> None:
        h = self.session.commands.run("read line; echo got:$line; sleep 0.2; echo done", background=True, keep_stdin=True, tag="reader")
        self.assertIsInstance(h, CommandHandle)
        self.assertGreater(h.pid, 0)
        listed = self.session.commands.list()
        self.assertIn(h.pid, [p.pid for p in listed])
        self.assertEqual(self.session.commands.connect("reader").pid, h.pid)
        h.send_stdin("hello\n", close=True)
        out: List[str] = []
        r = h.wait(on_stdout=out.append, timeout=60)
        self.assertEqual(r.exit_code, 0)
        self.assertIn("got:hello", r.stdout)
        self.assertIn("done", r.stdout)

    def test_background_kill(self) -> None:
        h = self.session.commands.run(["sleep", "300"], background=True)
        info = h.kill()
        self.assertEqual(info.pid, h.pid)
        r = h.wait(timeout=60)
        self.assertNotEqual(r.exit_code, 0)
        p = self.session.commands.get(h.pid)
        assert p is not None
        self.assertFalse(p.running)


if __name__ == "__main__":
    unittest.main()
