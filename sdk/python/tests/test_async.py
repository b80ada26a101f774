import asyncio
import hashlib
import os
import tempfile
import time
import re
import unittest
import uuid

from _support import TEMPLATE, env
from kiln import AsyncKiln, FunctionNotFoundError, PathOutsideWorkspaceError, SessionNotFoundError


class AsyncClientTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.kiln = AsyncKiln(env("KILN_URL"), env("KILN_API_KEY"), timeout=120.0)
        self.session = await self.kiln.sessions.create(template=TEMPLATE, metadata={"suite": "sdk-python-async"})

    async def asyncTearDown(self) -> None:
        await self.session.kill()
        await self.kiln.close()

    async def test_run_and_stream(self) -> None:
        r = await self.session.commands.run("echo hi; exit 2")
        self.assertEqual((r.exit_code, r.stdout), (2, "hi\n"))
        lines = []

        async def on_out(data: str) -> None:
            lines.append(data)

        r2 = await self.session.commands.run("echo a; sleep 0.1; echo b", on_stdout=on_out)
        self.assertEqual("".join(lines), "a\nb\n")
        self.assertEqual(r2.exit_code, 0)
        kinds = [e.type async for e in self.session.commands.stream(["sh", "-c", "echo x >&2"])]
        self.assertEqual((kinds[0], kinds[-1]), ("start", "exit"))
        self.assertIn("stderr", kinds)

    async def test_the_loop_keeps_running_while_requests_wait(self) -> None:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.05)

        t = asyncio.ensure_future(ticker())
        started = time.monotonic()
        results = await asyncio.gather(*(self.session.commands.run(["sh", "-c", f"sleep 1; echo {i}"]) for i in range(3)))
        elapsed = time.monotonic() - started
        stop.set()
        await t
        self.assertEqual([r.stdout for r in results], ["0\n", "1\n", "2\n"])
        # The loop ticked while three 1 s commands ran, so it was never blocked by them.
        self.assertGreater(ticks, 5, f"the event loop ran {ticks} ticks in {elapsed:.1f} s")

    async def test_files_and_background(self) -> None:
        data = os.urandom(3 * 1024 * 1024)
        info = await self.session.files.write("a/blob.bin", data)
        self.assertEqual(info.size, len(data))
        got = b"".join([c async for c in self.session.files.read_stream("a/blob.bin")])
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual([e.name for e in await self.session.files.list("a")], ["blob.bin"])
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(await self.session.files.download("a/blob.bin", os.path.join(tmp, "b")), len(data))
        with self.assertRaises(PathOutsideWorkspaceError):
            await self.session.files.read("/etc/passwd")
        h = await self.session.commands.run("sleep 0.3; echo bg", background=True)
        r = await h.wait(timeout=60)
        self.assertEqual(r.stdout, "bg\n")

    async def test_pty(self) -> None:
        term = await self.session.pty.create()
        async with term:
            await term.send("echo hi\n")
            out = await term.wait_for(re.compile(r"[\r\n]hi\r\n"), timeout=60)
            self.assertIn("echo hi", out)

    async def test_functions_and_errors(self) -> None:
        name = f"py-async-{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "index.js"), "w") as f:
                f.write("exports.handler = async (e) => ({ doubled: e.n * 2 });\n")
            await self.kiln.functions.deploy(tmp, name, timeout=30)
        try:
            r = await self.kiln.functions.invoke(name, {"n": 21})
            self.assertEqual(r.result, {"doubled": 42})
        finally:
            self.assertTrue(await self.kiln.functions.delete(name))
        with self.assertRaises(FunctionNotFoundError):
            await self.kiln.functions.invoke(name, {})
        with self.assertRaises(SessionNotFoundError):
            await self.kiln.sessions.connect("ses_nope")


if __name__ == "__main__":
    unittest.main()
