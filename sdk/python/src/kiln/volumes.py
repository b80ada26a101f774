"""``kiln.volumes``: the tenant's named volumes, which outlive sessions. Mount one when a session is
created: ``kiln.sessions.create("nodejs", volumes=[{"name": "data", "path": "/mnt/data", "readOnly": False}])``
(a session with volumes boots a sandbox of its own: a cold start)."""
from __future__ import annotations

from typing import List, Optional

from ._core import Core, quote
from .errors import NotFoundError
from .models import VolumeInfo


class Volumes:
    def __init__(self, core: Core) -> None:
        self._core = core

    def create(self, name: str, size_mb: int, *, idempotency_key: Optional[str] = None, mode: Optional[str] = None) -> VolumeInfo:
        """Raises ConflictError when the name is taken; with ``idempotency_key`` a repeated create
        returns the same volume. ``mode``: ``"local"`` or ``"synced"`` (default: the deployment's)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = {"name": name, "sizeMB": size_mb, **({"mode": mode} if mode else {})}
        return VolumeInfo.from_json(self._core.json("POST", "/api/v1/volumes", body, headers=headers))

    def sync(self, session_id: str, name: str) -> VolumeInfo:
        """Stores a synced volume, as session ``session_id`` (which mounts it read-write) sees it
        now, as the volume's next generation. Raises PayloadTooLargeError (VolumeTooLarge) when its
        files pass ``size_mb``; the previous generation stays."""
        return VolumeInfo.from_json(self._core.json("POST", f"/api/v1/sessions/{quote(session_id)}/volumes/{quote(name)}/sync"))

    def list(self) -> List[VolumeInfo]:
        return [VolumeInfo.from_json(v) for v in self._core.json("GET", "/api/v1/volumes")["volumes"]]

    def get(self, name: str) -> VolumeInfo:
        """Raises VolumeNotFoundError for an unknown name (or another tenant's)."""
        return VolumeInfo.from_json(self._core.json("GET", f"/api/v1/volumes/{quote(name)}"))

    def delete(self, name: str) -> bool:
        """Deletes it and its data; False when it was already gone. Raises VolumeInUseError while a
        live session mounts it."""
        try:
            self._core.request("DELETE", f"/api/v1/volumes/{quote(name)}").read()
            return True
        except NotFoundError:
            return False
