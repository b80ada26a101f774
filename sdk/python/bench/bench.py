"""Figures for `npm run bench` (tests/src/bench/sdk-python.ts): the SDK beside the same requests
made with bare http.client in the same run. Prints one JSON object. Needs KILN_URL and
KILN_SESSION (a live session id); KILN_API_KEY if keys are configured."""
import asyncio
import http.client
import json
import os
import statistics
import tempfile
import time
import urllib.parse

from kiln import AsyncKiln, Kiln

URL = os.environ["KILN_URL"]
SID = os.environ["KILN_SESSION"]
N = int(os.environ.get("BENCH_SDK_SAMPLES", "100"))
UPLOAD_MB = int(os.environ.get("BENCH_SDK_UPLOAD_MB", "64"))
u = urllib.parse.urlsplit(URL)


def raw(method: str, path: str, body: bytes, ctype: str) -> bytes:
    # A new connection per request, as the SDK makes: the floor is HTTP and Kiln, not the SDK.
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    conn.request(method, path, body=body, headers={"content-type": ctype})
    res = conn.getresponse()
    data = res.read()
    conn.close()
    if res.status >= 300:
        raise RuntimeError(f"{method} {path}: {res.status} {data[:200]!r}")
    return data


def p50(fn, n: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    kiln = Kiln(URL)
    s = kiln.sessions.connect(SID)
    run_body = json.dumps({"command": "true"}).encode()
    out = {
        "run_raw_ms": p50(lambda: raw("POST", f"/api/v1/sessions/{SID}/process/run", run_body, "application/json"), N),
        "run_sdk_ms": p50(lambda: s.commands.run(["true"]), N),
    }

    async def async_p50() -> float:
        async with AsyncKiln(URL) as ak:
            a = await ak.sessions.connect(SID)
            for _ in range(5):
                await a.commands.run(["true"])
            times = []
            for _ in range(N):
                t0 = time.perf_counter()
                await a.commands.run(["true"])
                times.append((time.perf_counter() - t0) * 1000)
            return statistics.median(times)

    out["run_async_sdk_ms"] = asyncio.run(async_p50())
    size = UPLOAD_MB << 20
    payload = os.urandom(size)
    with tempfile.NamedTemporaryFile() as f:
        f.write(payload)
        f.flush()
        t0 = time.perf_counter()
        raw("PUT", f"/api/v1/sessions/{SID}/files?path=raw.bin", payload, "application/octet-stream")
        out["upload_raw_mb_s"] = UPLOAD_MB / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        s.files.upload(f.name, "sdk.bin")
        out["upload_sdk_mb_s"] = UPLOAD_MB / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        s.files.download("sdk.bin", f.name + ".back")
        out["download_sdk_mb_s"] = UPLOAD_MB / (time.perf_counter() - t0)
        os.unlink(f.name + ".back")
    print(json.dumps(out))


main()
