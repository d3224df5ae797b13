"""A small server answering ClickHouse's HTTP interface by running each query on chDB in this process:
what `clickhouse-connect` sends (the query in the body or `query=`, `param_<name>` values, settings and
`database` as URL parameters, `default_format`, `query_id`) and what it reads back (the body in the
format asked for, errors as `Code: N. DB::Exception: …` with `X-ClickHouse-Exception-Code`).

Not a ClickHouse server: one process's engine, no users or passwords (any are accepted), no
compression, no sessions. It lets the `clickhouse://` code run over real HTTP against a real engine's
answers (no current ClickHouse server is installable here). A query's id is kept as its `log_comment`
setting, so that `KILL QUERY WHERE query_id = '…'` finds it in chDB's `system.processes` (not as a
comment in its text: a query with parameters is listed there rewritten, its comments gone).
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cost_api.store.clickhouse import chdb_connect, error_code

# URL parameters that are not settings
_TRANSPORT = {"query", "database", "default_format", "query_id", "session_id", "compress", "decompress", "user"}
_KILL = re.compile(r"KILL QUERY WHERE query_id\s*=\s*(?:'([^']+)'|\{(\w+):String\})( SYNC| ASYNC)?", re.I)


def _handler(directory: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if urlsplit(self.path).path in ("/ping", "/"):
                self._answer(200, b"Ok.\n")
            else:
                self._run()

        def do_POST(self) -> None:
            self._run()

        def _run(self) -> None:
            url = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            sql = (url.get("query", "") + "\n" + body).strip()
            params = {k[len("param_") :]: v for k, v in url.items() if k.startswith("param_")}
            settings = {k: v for k, v in url.items() if k not in _TRANSPORT and not k.startswith("param_")}
            query_id = url.get("query_id", "")
            killed = _KILL.search(sql)
            if killed:  # found by the log_comment every query here is given
                target = killed.group(1) or params.pop(killed.group(2), "")
                mode = killed.group(3) or ""
                sql = f"KILL QUERY WHERE Settings['log_comment'] = {{target:String}}{mode}"
                params["target"] = target
            elif query_id:
                settings["log_comment"] = query_id
            options = "".join(f"&{k}={v}" for k, v in settings.items() if k != "client_protocol_version")
            try:
                conn = chdb_connect(f"{directory}?database={url.get('database', 'default')}{options}")
                try:
                    answer = conn.query(sql, url.get("default_format", "TabSeparated"), params=params)
                    data = bytes(answer.bytes())
                finally:
                    conn.close()
            except Exception as exc:
                code = error_code(exc) or 1000
                self._answer(500, f"{exc}\n".encode(), {"X-ClickHouse-Exception-Code": str(code)})
                return
            self._answer(200, data, {"X-ClickHouse-Query-Id": query_id})

        def _answer(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-ClickHouse-Timezone", "UTC")
            self.send_header("X-ClickHouse-Summary", "{}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left (a query cancelled by its request) is not an error of the server."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def clickhouse_http(directory: Path) -> Iterator[int]:
    """Serve ClickHouse's HTTP interface over the chDB `directory` on a free port (yielded)."""
    server = _Server(("127.0.0.1", 0), _handler(directory))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
