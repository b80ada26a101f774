import hashlib
import os
import tempfile
import threading
import tracemalloc
import unittest

from _support import SessionTest

MB = 1 << 20


def write_random_file(path: str, size: int) -> str:
    """Writes ``size`` pseudo-random bytes (not compressible, not all zeros) and returns their sha256."""
    h = hashlib.sha256()
    seed = os.urandom(32)
    with open(path, "wb") as f:
        written, i = 0, 0
        while written < size:
            # 1 MiB blocks from a hash chain: fast, and different on every run.
            block = hashlib.shake_256(seed + i.to_bytes(8, "big")).digest(min(MB, size - written))
            f.write(block)
            h.update(block)
            written += len(block)
            i += 1
    return h.hexdigest()


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MB), b""):
            h.update(block)
    return h.hexdigest()


class FilesTest(SessionTest):
    def test_write_read_list_stat_rename_remove(self) -> None:
        f = self.session.files
        info = f.write("dir/sub/hello.txt", "héllo\n")
        self.assertEqual(info.size, len("héllo\n".encode()))
        self.assertEqual(f.read("dir/sub/hello.txt"), "héllo\n")
        f.write("bin.dat", bytes(range(256)), mode=0o600)
        self.assertEqual(f.read_bytes("bin.dat"), bytes(range(256)))
        self.assertEqual(f.stat("bin.dat").mode & 0o777, 0o600)
        names = {e.name: e.type for e in f.list(".")}
        self.assertEqual(names.get("dir"), "dir")
        self.assertEqual(names.get("bin.dat"), "file")
        f.make_dir("made/deep")
        self.assertEqual(f.stat("made/deep").type, "dir")
        f.rename("bin.dat", "made/moved.dat")
        self.assertFalse(f.exists("bin.dat"))
        self.assertTrue(f.exists("made/moved.dat"))
        self.assertTrue(f.remove("made", recursive=True))
        self.assertFalse(f.remove("made", recursive=True))
        # What a process wrote is what files.read sees, and the other way round.
        self.session.commands.run("printf from-shell > shell.txt")
        self.assertEqual(f.read("shell.txt"), "from-shell")
        self.assertEqual(self.session.commands.run("cat dir/sub/hello.txt").stdout, "héllo\n")

    def test_write_from_iterator_is_chunked(self) -> None:
        chunks = (bytes([i]) * 1000 for i in range(50))
        info = self.session.files.write("gen.bin", chunks)
        self.assertEqual(info.size, 50_000)
        self.assertEqual(self.session.commands.run("sha256sum gen.bin").stdout.split()[0], hashlib.sha256(b"".join(bytes([i]) * 1000 for i in range(50))).hexdigest())

    def test_write_from_a_pipe_of_unknown_length(self) -> None:
        r, w = os.pipe()
        payload = os.urandom(3 * MB + 17)

        def feed() -> None:
            with os.fdopen(w, "wb") as out:
                out.write(payload)

        t = threading.Thread(target=feed)
        t.start()
        with os.fdopen(r, "rb") as src:
            info = self.session.files.write("piped.bin", src)
        t.join()
        self.assertEqual(info.size, len(payload))
        self.assertEqual(hashlib.sha256(self.session.files.read_bytes("piped.bin")).hexdigest(), hashlib.sha256(payload).hexdigest())

    def test_upload_download_100_mb_streamed(self) -> None:
        size = 100 * MB
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "big.bin")
            digest = write_random_file(src, size)
            # Streamed: the upload's peak Python memory stays a few chunks, far below the file.
            tracemalloc.start()
            try:
                info = self.session.files.upload(src, "big.bin")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            self.assertEqual(info.size, size)
            self.assertLess(peak, 16 * MB, f"upload held {peak} bytes in memory at its peak")
            # Hashed inside the sandbox...
            r = self.session.commands.run(["sha256sum", "big.bin"], timeout_ms=120_000)
            self.assertEqual(r.stdout.split()[0], digest)
            # ...and after coming back.
            dst = os.path.join(tmp, "back.bin")
            tracemalloc.start()
            try:
                n = self.session.files.download("big.bin", dst)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            self.assertEqual(n, size)
            self.assertLess(peak, 16 * MB, f"download held {peak} bytes in memory at its peak")
            self.assertEqual(sha256_of(dst), digest)
            self.assertFalse(os.path.exists(dst + ".kiln-part"))
        self.assertTrue(self.session.files.remove("big.bin"))


if __name__ == "__main__":
    unittest.main()
