import os
import tempfile
import unittest
import uuid
import zipfile
import io

from _support import client
from kiln import FunctionNotFoundError
from kiln.functions import zip_dir

HANDLER = """
const { greet } = require('./lib/greet');
exports.handler = async (event) => ({ message: greet(event.name), version: VERSION });
"""


class FunctionsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.kiln = client()
        self.name = f"py-sdk-{uuid.uuid4().hex[:8]}"
        self.addCleanup(self.kiln.functions.delete, self.name)
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def write_app(self, version: int) -> str:
        root = self.tmp.name
        os.makedirs(os.path.join(root, "lib"), exist_ok=True)
        os.makedirs(os.path.join(root, "__pycache__"), exist_ok=True)
        with open(os.path.join(root, "index.js"), "w") as f:
            f.write(HANDLER.replace("VERSION", str(version)))
        with open(os.path.join(root, "lib", "greet.js"), "w") as f:
            f.write("exports.greet = (n) => `hello ${n}`;\n")
        with open(os.path.join(root, "__pycache__", "junk.pyc"), "wb") as f:
            f.write(b"never shipped")
        return root

    def test_zip_dir_layout(self) -> None:
        root = self.write_app(1)
        os.symlink("/etc/passwd", os.path.join(root, "outside"))
        names = zipfile.ZipFile(io.BytesIO(zip_dir(root))).namelist()
        self.assertEqual(sorted(names), ["index.js", "lib/greet.js"], "caches and links out of the folder stay out")

    def test_deploy_invoke_redeploy(self) -> None:
        fn = self.kiln.functions.deploy(self.write_app(1), self.name, runtime="nodejs20.x", handler="index.handler", timeout=30)
        self.assertEqual(fn.name, self.name)
        self.assertEqual(fn.runtime, "nodejs20.x")
        r = self.kiln.functions.invoke(self.name, {"name": "kiln"})
        self.assertEqual(r.status, "succeeded", r.raw)
        self.assertEqual(r.result, {"message": "hello kiln", "version": 1})
        self.assertIn(r.start_type, ("cold", "warm", "hot"))
        # Deploying again updates the code of the existing function.
        fn2 = self.kiln.functions.deploy(self.write_app(2), self.name, timeout=30)
        self.assertNotEqual(fn2.code_sha256, fn.code_sha256)
        self.assertEqual(self.kiln.functions.invoke(self.name, {"name": "again"}).result, {"message": "hello again", "version": 2})
        self.assertIn(self.name, [f.name for f in self.kiln.functions.list()])
        queued = self.kiln.functions.invoke(self.name, {"name": "later"}, asynchronous=True)
        self.assertTrue(queued.id)

    def test_handler_error_is_a_failed_record(self) -> None:
        root = self.tmp.name
        with open(os.path.join(root, "index.js"), "w") as f:
            f.write("exports.handler = async () => { throw new TypeError('bad input'); };\n")
        self.kiln.functions.deploy(root, self.name, timeout=30)
        r = self.kiln.functions.invoke(self.name, {})
        self.assertEqual(r.status, "failed")
        assert r.error is not None
        self.assertEqual(r.error["errorType"], "TypeError")
        self.assertEqual(r.error["errorMessage"], "bad input")

    def test_unknown_function(self) -> None:
        with self.assertRaises(FunctionNotFoundError) as cm:
            self.kiln.functions.invoke(f"missing-{uuid.uuid4().hex[:6]}", {})
        self.assertEqual(cm.exception.status, 404)
        self.assertEqual(cm.exception.code, "FunctionNotFound")
        self.assertFalse(self.kiln.functions.delete(f"missing-{uuid.uuid4().hex[:6]}"))


if __name__ == "__main__":
    unittest.main()
