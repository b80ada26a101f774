"""What every test needs: the Kiln the harness started (KILN_URL, KILN_API_KEY) and sessions
that are killed when the test ends. Missing variables are an error, never a skip."""
from __future__ import annotations

import os
import unittest

from kiln import Kiln, Session


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run these tests through tests/src/e2e/sdk-python.test.ts, or set KILN_URL, KILN_API_KEY, KILN_RATE_API_KEY")
    return value


TEMPLATE = os.environ.get("KILN_TEMPLATE", "nodejs")


def client(**kw) -> Kiln:
    # Generous timeouts: the test machine is shared and slow under load.
    return Kiln(env("KILN_URL"), env("KILN_API_KEY"), timeout=120.0, **kw)


class SessionTest(unittest.TestCase):
    """A test with one session of its own, killed afterwards (its id is printed if the test fails)."""

    kiln: Kiln
    session: Session

    def setUp(self) -> None:
        self.kiln = client()
        self.session = self.kiln.sessions.create(template=TEMPLATE, metadata={"suite": "sdk-python", "test": self.id().rsplit(".", 1)[-1]})
        self.addCleanup(self._end)

    def _end(self) -> None:
        if not self.session.kill():
            print(f"session {self.session.id} was already gone at cleanup")
