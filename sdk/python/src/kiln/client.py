"""The synchronous client."""
from __future__ import annotations

import ssl
from typing import Any, Callable, Dict, Optional

from ._core import Config, Core
from .errors import KilnError
from .functions import Functions
from .session import Sessions
from .snapshots import Snapshots
from .volumes import Volumes


class Kiln:
    """``Kiln(url, api_key)``; both default to the environment's KILN_URL and KILN_API_KEY.

    ``timeout`` is seconds per socket operation; 429 and 503 answers are retried up to
    ``max_retries`` times, waiting Retry-After (or an exponential backoff). Thread-safe.
    """

    def __init__(self, url: Optional[str] = None, api_key: Optional[str] = None, *, timeout: float = 60.0, max_retries: int = 4, backoff: float = 0.5, max_backoff: float = 10.0, ssl_context: Optional[ssl.SSLContext] = None, headers: Optional[Dict[str, str]] = None, on_retry: Optional[Callable[[KilnError, int, float], None]] = None) -> None:
        self.config = Config.from_env(url, api_key, timeout=timeout, max_retries=max_retries, backoff=backoff, max_backoff=max_backoff, ssl_context=ssl_context, headers=dict(headers or {}), on_retry=on_retry)
        self._core = Core(self.config)
        self.sessions = Sessions(self._core)
        self.functions = Functions(self._core)
        self.snapshots = Snapshots(self._core)
        self.volumes = Volumes(self._core)

    def health(self) -> Any:
        """``GET /api/v1/health``: Redis and executor reachability."""
        return self._core.json("GET", "/api/v1/health")

    def __repr__(self) -> str:
        return f"Kiln(url={self.config.url!r})"
