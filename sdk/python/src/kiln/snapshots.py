"""``kiln.snapshots``: the tenant's saved workspaces (made with ``session.snapshot()``)."""
from __future__ import annotations

from typing import List

from ._core import Core, quote
from .errors import NotFoundError
from .models import SnapshotInfo


class Snapshots:
    def __init__(self, core: Core) -> None:
        self._core = core

    def list(self) -> List[SnapshotInfo]:
        return [SnapshotInfo.from_json(s) for s in self._core.json("GET", "/api/v1/snapshots")["snapshots"]]

    def get(self, snapshot_id: str) -> SnapshotInfo:
        """Raises SnapshotNotFoundError for an unknown id (or another tenant's)."""
        return SnapshotInfo.from_json(self._core.json("GET", f"/api/v1/snapshots/{quote(snapshot_id)}"))

    def delete(self, snapshot_id: str) -> bool:
        """Deletes it and its archive; False when it was already gone. Sessions made from it stay."""
        try:
            self._core.request("DELETE", f"/api/v1/snapshots/{quote(snapshot_id)}").read()
            return True
        except NotFoundError:
            return False
