"""``kiln.functions``: deploy a folder as a function, invoke it, manage it."""
from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from typing import Any, Dict, List, Optional, Union

from ._core import PathArg, Core, path_of, quote
from .errors import FunctionExistsError, NotFoundError
from .models import FunctionInfo, Invocation

#: Folders never packed: caches and version control.
SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".venv", ".mypy_cache", ".pytest_cache"}


def zip_dir(directory: PathArg) -> bytes:
    """The folder as a zip in Lambda's layout (its files at the archive's root). Symlinks are
    packed as the files they point to only when they stay inside the folder."""
    root = os.path.realpath(directory)
    if not os.path.isdir(root):
        raise ValueError(f"{directory!r} is not a directory")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                real = os.path.realpath(full)
                if os.path.commonpath([root, real]) != root or not os.path.isfile(real):
                    continue  # a link out of the folder: never ship what lies outside it
                arc = os.path.relpath(full, root).replace(os.sep, "/")
                info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (os.stat(real).st_mode & 0o777 | 0o100000) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(real, "rb") as f:
                    z.writestr(info, f.read())
    return buf.getvalue()


class Functions:
    def __init__(self, core: Core) -> None:
        self._core = core

    def deploy(self, directory: PathArg, name: str, *, runtime: str = "nodejs20.x", handler: Optional[str] = None, publish: bool = False, memory_size: Optional[int] = None, timeout: Optional[int] = None, environment: Optional[Dict[str, str]] = None, description: Optional[str] = None, template: Optional[str] = None) -> FunctionInfo:
        """Zips ``directory`` and creates the function ``name``, or updates its code and
        settings when it exists. ``timeout`` is the handler's timeout in seconds (Lambda's unit)."""
        settings: Dict[str, Any] = {k: v for k, v in (("handler", handler), ("memorySize", memory_size), ("timeout", timeout), ("environment", environment), ("description", description), ("template", template)) if v is not None}
        code = {"zipFile": base64.b64encode(zip_dir(directory)).decode("ascii")}
        try:
            return FunctionInfo.from_json(self._core.json("POST", "/api/v1/functions", {"name": name, "runtime": runtime, "code": code, "publish": publish, **settings}))
        except FunctionExistsError:
            return FunctionInfo.from_json(self._core.json("PUT", f"/api/v1/functions/{quote(name)}", {"runtime": runtime, "code": code, "publish": publish, **settings}))

    def invoke(self, name: str, event: Any = None, *, qualifier: Optional[str] = None, asynchronous: bool = False, idempotency_key: Optional[str] = None, timeout: Optional[float] = None) -> Invocation:
        """Invokes ``name`` with ``event`` (any JSON; None sends {}). Synchronous by default:
        returns the finished record (``status`` succeeded, failed or timeout). With
        ``asynchronous=True`` Kiln queues it and the record has only ``id``."""
        q = {"qualifier": qualifier, "type": "Event" if asynchronous else None}
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        body = json.dumps({} if event is None else event).encode("utf-8")
        res = self._core.request("POST", path_of(f"/api/v1/functions/{quote(name)}/invocations", q), body=body, headers={"content-type": "application/json", **(headers or {})}, timeout=timeout or max(self._core.config.timeout, 960.0))
        return Invocation.from_json(res.json())

    def get(self, name: str, qualifier: Optional[str] = None) -> FunctionInfo:
        return FunctionInfo.from_json(self._core.json("GET", path_of(f"/api/v1/functions/{quote(name)}", {"qualifier": qualifier})))

    def list(self) -> List[FunctionInfo]:
        out: List[FunctionInfo] = []
        marker: Optional[str] = None
        while True:
            page = self._core.json("GET", path_of("/api/v1/functions", {"marker": marker}))
            out += [FunctionInfo.from_json(f) for f in page["functions"]]
            marker = page.get("nextMarker")
            if not marker:
                return out

    def delete(self, name: str, qualifier: Optional[str] = None) -> bool:
        try:
            self._core.request("DELETE", path_of(f"/api/v1/functions/{quote(name)}", {"qualifier": qualifier})).read()
            return True
        except NotFoundError:
            return False
