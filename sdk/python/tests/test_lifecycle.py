import asyncio
import time
import unittest

from _support import TEMPLATE, SessionTest, env
from kiln import AsyncKiln, SessionPausedError, SnapshotNotFoundError


class LifecycleTest(SessionTest):
    def test_pause_resume_hibernate_restore_with_usage(self) -> None:
        s = self.session
        s.files.write("mark.txt", "kept")
        s.commands.run("while :; do :; done", background=True)
        paused = s.pause()
        self.assertEqual(paused.session.status, "paused")
        self.assertEqual(s.info.status, "paused")
        a = s.usage()
        time.sleep(0.3)
        b = s.usage()
        self.assertTrue(a.paused)
        self.assertFalse(a.hibernated)
        # Frozen: the spinning loop would add ~300 000 µs here. The kernel may still account the
        # last slice it ran before the freeze on a later read (47 µs seen), so not exactly equal.
        self.assertLess(b.cpu_usage_us - a.cpu_usage_us, 5000)
        resumed = s.resume()
        self.assertEqual((resumed.session.status, resumed.resume_type), ("running", "thawed"))
        self.assertFalse(s.usage().paused)
        s.hibernate()
        self.assertTrue(s.usage().hibernated)
        self.assertEqual(s.resume().resume_type, "restored")
        self.assertEqual(s.files.read("mark.txt"), "kept")

    def test_paused_without_auto_resume_raises_session_paused(self) -> None:
        s = self.kiln.sessions.create(template=TEMPLATE, autoResume=False)
        with s:
            s.pause()
            with self.assertRaises(SessionPausedError):
                s.commands.run("true")
            s.resume()
            self.assertEqual(s.commands.run("echo ok").stdout, "ok\n")

    def test_snapshot_create_from_snapshot_fork_and_delete(self) -> None:
        s = self.session
        s.files.write("plan.txt", "v1")
        snap = s.snapshot("py-v1")
        self.assertEqual((snap.name, snap.session_id, snap.template), ("py-v1", s.id, TEMPLATE))
        self.assertIn(snap.id, [x.id for x in self.kiln.snapshots.list()])
        self.assertEqual(self.kiln.snapshots.get(snap.id).id, snap.id)
        s.files.write("plan.txt", "v2")
        with self.kiln.sessions.create_from_snapshot(snap.id) as restored:
            self.assertEqual(restored.files.read("plan.txt"), "v1")
        forks = s.fork(2, metadata={"branch": "py"})
        try:
            self.assertEqual(len(forks), 2)
            self.assertEqual(forks[0].info.metadata.get("branch"), "py")
            forks[0].files.write("plan.txt", "fork-a")
            self.assertEqual(forks[1].files.read("plan.txt"), "v2")
        finally:
            for f in forks:
                f.kill()
        self.assertTrue(self.kiln.snapshots.delete(snap.id))
        self.assertFalse(self.kiln.snapshots.delete(snap.id))
        with self.assertRaises(SnapshotNotFoundError):
            self.kiln.snapshots.get(snap.id)
        with self.assertRaises(SnapshotNotFoundError):
            self.kiln.sessions.create_from_snapshot(snap.id)


class AsyncLifecycleTest(unittest.TestCase):
    def test_async_pause_resume_snapshot_fork(self) -> None:
        async def main() -> None:
            async with AsyncKiln(env("KILN_URL"), env("KILN_API_KEY"), timeout=120.0) as kiln:
                async with await kiln.sessions.create(template=TEMPLATE) as s:
                    await s.files.write("a.txt", "async")
                    self.assertEqual((await s.pause()).session.status, "paused")
                    self.assertTrue((await s.usage()).paused)
                    self.assertEqual((await s.resume()).resume_type, "thawed")
                    snap = await s.snapshot("py-async")
                    try:
                        self.assertIn(snap.id, [x.id for x in await kiln.snapshots.list()])
                        async with await kiln.sessions.create_from_snapshot(snap.id) as r:
                            self.assertEqual(await r.files.read("a.txt"), "async")
                        forks = await s.fork(1)
                        try:
                            self.assertEqual(await forks[0].files.read("a.txt"), "async")
                        finally:
                            for f in forks:
                                await f.kill()
                    finally:
                        await kiln.snapshots.delete(snap.id)

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main()
