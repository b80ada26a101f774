import asyncio
import unittest

from _support import TEMPLATE, client, env
from kiln import AsyncKiln, ConflictError, VolumeInUseError, VolumeNotFoundError


class VolumesTest(unittest.TestCase):
    def test_create_mount_in_two_sessions_refuse_delete_while_mounted(self) -> None:
        kiln = client()
        vol = kiln.volumes.create("py-data", 16, idempotency_key="py-vol-1")
        self.addCleanup(lambda: kiln.volumes.delete("py-data"))
        self.assertEqual((vol.name, vol.size_mb), ("py-data", 16))
        self.assertEqual(kiln.volumes.create("py-data", 16, idempotency_key="py-vol-1").id, vol.id)
        with self.assertRaises(ConflictError):
            kiln.volumes.create("py-data", 16)
        self.assertIn("py-data", [v.name for v in kiln.volumes.list()])
        with kiln.sessions.create(TEMPLATE, volumes=[{"name": "py-data", "path": "/mnt/data", "readOnly": False}]) as writer:
            with kiln.sessions.create(TEMPLATE, volumes=[{"name": "py-data", "path": "/mnt/data", "readOnly": True}]) as reader:
                self.assertEqual(writer.commands.run("echo shared > /mnt/data/note").exit_code, 0)
                self.assertEqual(reader.commands.run("cat /mnt/data/note").stdout, "shared\n")
                self.assertNotEqual(reader.commands.run("echo x > /mnt/data/other", check=False).exit_code, 0)
                with self.assertRaises(VolumeInUseError):
                    kiln.volumes.delete("py-data")
        self.assertTrue(kiln.volumes.delete("py-data"))
        self.assertFalse(kiln.volumes.delete("py-data"))
        with self.assertRaises(VolumeNotFoundError):
            kiln.volumes.get("py-data")

    def test_synced_volume_carries_writes_through_a_sync(self) -> None:
        kiln = client()
        vol = kiln.volumes.create("py-synced", 4, mode="synced")
        self.addCleanup(lambda: kiln.volumes.delete("py-synced"))
        self.assertEqual((vol.mode, vol.generation), ("synced", 0))
        with kiln.sessions.create(TEMPLATE, volumes=[{"name": "py-synced", "path": "/mnt/s", "readOnly": False}]) as writer:
            self.assertEqual(writer.commands.run("echo synced > /mnt/s/f").exit_code, 0)
            with self.assertRaises(VolumeInUseError):
                kiln.sessions.create(TEMPLATE, volumes=[{"name": "py-synced", "path": "/mnt/s", "readOnly": False}])
            self.assertEqual(kiln.volumes.sync(writer.id, "py-synced").generation, 1)
        with kiln.sessions.create(TEMPLATE, volumes=[{"name": "py-synced", "path": "/mnt/s", "readOnly": True}]) as reader:
            self.assertEqual(reader.commands.run("cat /mnt/s/f").stdout, "synced\n")

    def test_async_volumes(self) -> None:
        async def main() -> None:
            async with AsyncKiln(env("KILN_URL"), env("KILN_API_KEY"), timeout=120.0) as kiln:
                vol = await kiln.volumes.create("py-async", 8)
                try:
                    self.assertEqual((await kiln.volumes.get("py-async")).id, vol.id)
                    self.assertIn(vol.id, [v.id for v in await kiln.volumes.list()])
                finally:
                    self.assertTrue(await kiln.volumes.delete("py-async"))

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main()
