"""`cost-api serve` as a real subprocess on loopback, for the tests where the wire matters."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

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
