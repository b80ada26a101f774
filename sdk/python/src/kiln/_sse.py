"""Server-Sent Events parsing for Kiln's process streams (only what Kiln sends: event + data)."""
from __future__ import annotations

import json
from typing import Iterable, Iterator, List

from .models import ProcessEvent


def sse_events(lines: Iterable[bytes]) -> Iterator[ProcessEvent]:
    event = "message"
    data: List[str] = []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data:
                yield _event(event, "\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data:
        yield _event(event, "\n".join(data))


def _event(kind: str, text: str) -> ProcessEvent:
    j = json.loads(text)
    if kind == "exit":
        return ProcessEvent(type="exit", exit_code=j.get("exitCode"), signal=j.get("signal", ""), raw=j)
    if kind == "start":
        return ProcessEvent(type="start", pid=j.get("pid", 0), raw=j)
    return ProcessEvent(type=kind, data=j.get("data", ""), raw=j)
