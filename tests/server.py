"""Real HTTP servers on loopback, for the tests where the wire matters: `cost-api serve` as a
subprocess, or an app under uvicorn in the test's own event loop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import uvicorn
from litestar import Litestar

from .pgcluster import free_port


@contextmanager
def serving(url: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Iterator[str]:
    """Start `cost-api serve --db url *args` (no COST_API_* from the caller's environment but `env`),
    wait for /healthz, yield the base URL, and stop it."""
    port = free_port()
    command = [sys.executable, "-m", "cost_api.cli", "serve", "--db", url, "--port", str(port), *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    with subprocess.Popen(command, env={**clean, **(env or {})}, cwd=cwd, stderr=subprocess.PIPE) as proc:
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
                if time.monotonic() > deadline:
                    raise AssertionError("server did not come up")
            yield base
        finally:
            proc.terminate()
            proc.wait(10)


@asynccontextmanager
async def serving_app(app: Litestar) -> AsyncIterator[str]:
    """`app` behind a real uvicorn server on a loopback port, in this test's event loop: the wire is
    real (a client can leave in the middle of a request) and the test can still look inside the app."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise AssertionError("server exited before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def spawned_workers(pid: int) -> list[int]:
    """The worker processes uvicorn spawned under `pid` (`cost-api serve --workers N`, N > 1), not
    multiprocessing's resource tracker: read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    return sorted(found)
