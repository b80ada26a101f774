"""A session's files under /workspace: read, write, list, upload and download, streamed."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator, List, Optional, Union

from ._core import PathArg, CHUNK_BYTES, path_of, quote
from .errors import NotFoundError
from .models import FileInfo

if TYPE_CHECKING:
    from .session import Session

#: Seconds a file transfer may go without progress (a 100 MB upload under load can be slow).
TRANSFER_TIMEOUT_S = 300.0

WriteData = Union[str, bytes, bytearray, BinaryIO, Iterable[bytes]]


class Files:
    """``session.files``. Paths are relative to /workspace or absolute inside it."""

    def __init__(self, session: "Session") -> None:
        self._session = session
        self._base = f"/api/v1/sessions/{quote(session.id)}/files"

    def _timeout(self) -> float:
        return max(self._session._core.config.timeout, TRANSFER_TIMEOUT_S)

    def read(self, path: str) -> str:
        """The file's text (UTF-8). Use ``read_bytes`` for binary files, ``read_stream`` for big ones."""
        return self.read_bytes(path).decode("utf-8")

    def read_bytes(self, path: str) -> bytes:
        return self._session._core.request("GET", path_of(self._base, {"path": path}), timeout=self._timeout()).read()

    def read_stream(self, path: str, chunk_size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The file's bytes in chunks as they arrive; never the whole file in memory."""
        res = self._session._core.request("GET", path_of(self._base, {"path": path}), timeout=self._timeout())
        return res.iter_bytes(chunk_size)

    def write(self, path: str, data: WriteData, mode: Optional[int] = None) -> FileInfo:
        """Writes ``data`` to ``path`` (parents created, replaced if it exists). A binary file
        object is streamed from its position; an iterable of bytes is sent chunked. ``mode`` is
        the permission bits (default 0o644)."""
        body = data.encode("utf-8") if isinstance(data, str) else data
        q = {"path": path, "mode": format(mode, "o") if mode is not None else None}
        res = self._session._core.request("PUT", path_of(self._base, q), body=body, headers={"content-type": "application/octet-stream"}, timeout=self._timeout())
        return FileInfo.from_json(res.json())

    def upload(self, local_path: PathArg, path: str, mode: Optional[int] = None) -> FileInfo:
        """Streams a local file to ``path`` in 1 MiB chunks (its size bounds nothing in memory)."""
        with open(local_path, "rb") as f:
            return self.write(path, f, mode)

    def download(self, path: str, local_path: PathArg) -> int:
        """Streams ``path`` into a local file; returns the number of bytes written. The local
        file is written under a temporary name and renamed, so a cut stream leaves no half file."""
        tmp = f"{os.fspath(local_path)}.kiln-part"
        n = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in self.read_stream(path):
                    f.write(chunk)
                    n += len(chunk)
            os.replace(tmp, local_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return n

    def list(self, path: str = ".") -> List[FileInfo]:
        return [FileInfo.from_json(e) for e in self._session._core.json("GET", path_of(self._base + "/list", {"path": path}))["entries"]]

    def stat(self, path: str) -> FileInfo:
        return FileInfo.from_json(self._session._core.json("GET", path_of(self._base + "/stat", {"path": path})))

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
            return True
        except NotFoundError:
            return False

    def make_dir(self, path: str) -> FileInfo:
        return FileInfo.from_json(self._session._core.json("POST", self._base + "/mkdir", {"path": path}))

    def remove(self, path: str, recursive: bool = False) -> bool:
        """Removes a file or directory; returns whether it existed."""
        return bool(self._session._core.json("DELETE", path_of(self._base, {"path": path, "recursive": recursive}))["existed"])

    def rename(self, old_path: str, new_path: str) -> FileInfo:
        return FileInfo.from_json(self._session._core.json("POST", self._base + "/rename", {"from": old_path, "to": new_path}))
