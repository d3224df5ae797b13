"""The `cost-api` command line: every subcommand is listed, with its flags, in README.md's "Command
line" (tests/test_cli.py holds the two to each other)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from cost_api.config import ConfigError, Duration, Settings, load_settings
from cost_api.errors import CostApiError
from cost_api.pricing.file import PricingError
from cost_api.store.database import DatabaseUnavailable, QueryTimeout, SchemaMissing
from cost_api.store.queries import QueryRegistryError
from cost_api.store.url import DatabaseURLError
from cost_api.windows import parse_instant

# Problems a user can fix; reported as one line, never as a traceback. A CostApiError is a bad flag
# read by the API's own parsers (`--at`, `--window`, `--to`, `--tz`): their 400 message.
USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    PricingError,
    QueryRegistryError,
    DatabaseURLError,
    DatabaseUnavailable,
    SchemaMissing,
    QueryTimeout,
    CostApiError,
)


class CliError(Exception):
    pass


# what the commands answer with a message and exit status 2 (one tuple: the checker reads no starred except)
_FAILURES: tuple[type[Exception], ...] = (*USER_ERRORS, CliError)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, overrides={"database_url": getattr(args, "db", None)})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _check_database(settings: Settings) -> None:
    from cost_api.web.service import build_service

    service = build_service(settings)
    try:
        await service.db.check_schema()
    finally:
        await service.close()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cost_api.aggregation.memory import limit_arenas

    limit_arenas()  # before any thread of the server allocates
    settings = _settings(args)
    if not (settings.api_keys or settings.api_key_hashes) and not _is_loopback(args.host) and not args.insecure:
        raise CliError(
            f"refusing to bind {args.host} without API keys: anyone who can reach it would see every "
            "customer's spend. Configure api_keys (or COST_API_KEYS), bind 127.0.0.1, or pass --insecure."
        )
    if args.workers > 1 and settings.database_url.startswith("chdb:"):
        raise CliError(
            f"--workers {args.workers} with database_url {settings.database_url}: chDB is one process's engine "
            "(its directory is locked by the process that opens it). Serve it with one process, or serve a "
            "ClickHouse server's log (clickhouse://…) with several."
        )
    asyncio.run(_check_database(settings))  # a refusal stops here, before any worker starts
    # log_config=None: uvicorn's loggers propagate to the root logger that create_app set up (cost_api.logs)
    options: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": "info", "access_log": False}
    if args.workers > 1:
        return _serve_workers(settings, args.workers, options)
    from cost_api.web.app import create_app

    uvicorn.run(_frozen(create_app(settings)), **options, log_config=None)  # this process serves
    return 0


def _frozen(app: Any) -> Any:
    """`app`, once every object alive now — the modules, the app, its settings and prices, all kept for
    the process's life — is out of the cyclic garbage collector's generations (`gc.freeze`). A full
    collection, which requests' garbage triggers about once a second under load, then walks only what
    was made since, not ~100,000 start-up objects with every request waiting: that walk took ~40 ms,
    and was the whole p99 of the budget check and `/healthz` alike at 16 connections and more
    (docs/performance.md#the-garbage-collectors-pause). Freezing does not stop reference counting: a
    start-up object dropped later is freed as before; only one caught in a reference cycle is not."""
    gc.collect()  # the garbage of start-up is freed, not frozen
    gc.freeze()
    return app


# `cost-api serve --workers N`: N worker processes, spawned (not forked) and supervised by uvicorn
# (SIGTERM or SIGINT stops them all; a worker that dies is replaced; one that exits with uvicorn's
# start-up failure status stops them all). Each builds its own app from the settings validated here:
# their JSON in WORKER_SETTINGS, validated again (`load_settings`, which reads nothing else: no file,
# no other variable). A worker that cannot start writes why to the file named by WORKER_FAILURES.
WORKER_SETTINGS = "_COST_API_WORKER_SETTINGS"
WORKER_FAILURES = "_COST_API_WORKER_FAILURES"


def _serve_workers(settings: Settings, workers: int, options: dict[str, Any]) -> int:
    import uvicorn

    from cost_api.logs import drain, logging_config

    os.environ[WORKER_SETTINGS] = encode_settings(settings)
    try:
        fd, failures = tempfile.mkstemp(prefix="cost-api-serve-", suffix=".failures")
        os.close(fd)
        os.environ[WORKER_FAILURES] = failures
    except OSError:  # nowhere to write: a failed start is in the log only
        failures = None
        os.environ.pop(WORKER_FAILURES, None)
    logging_config().configure()  # the supervisor's own lines, through the same formatter
    try:
        uvicorn.run(f"{__name__}:{worker_app.__name__}", factory=True, workers=workers, **options, log_config=None)
        drain()  # the supervisor's last lines before ours
        failed = Path(failures).read_text() if failures else ""
    finally:
        if failures:
            with contextlib.suppress(OSError):
                os.unlink(failures)
    if failed:
        raise CliError(f"a worker could not start, and the server stopped: {failed.splitlines()[0]}")
    return 0


def encode_settings(settings: Settings) -> str:
    def enc_hook(obj: Any) -> Any:
        if isinstance(obj, Duration):
            return obj.text
        raise NotImplementedError(f"cannot encode {type(obj).__name__}")

    return msgspec.json.encode(settings, enc_hook=enc_hook).decode()


def decode_settings(text: str) -> Settings:
    return load_settings(environ={}, overrides=msgspec.json.decode(text))


def worker_app() -> Any:
    """The app of one worker of `cost-api serve --workers N` (uvicorn calls it in each worker). A
    worker that cannot build it exits with uvicorn's start-up failure status, which stops the server
    rather than restarting the worker over and over."""
    from uvicorn.config import STARTUP_FAILURE

    from cost_api.aggregation.memory import limit_arenas
    from cost_api.web.app import create_app

    limit_arenas()
    try:
        raw = os.environ.get(WORKER_SETTINGS)
        if raw is None:
            raise CliError(f"{WORKER_SETTINGS} is not set: worker_app serves the workers of `cost-api serve`")
        return _frozen(create_app(decode_settings(raw)))
    except _FAILURES as exc:
        why = str(exc)
    except Exception as exc:
        traceback.print_exc()
        why = f"{type(exc).__name__}: {exc}"
    print(f"cost-api: worker {os.getpid()}: {why}", file=sys.stderr, flush=True)
    failures = os.environ.get(WORKER_FAILURES)
    if failures:
        with contextlib.suppress(OSError), open(failures, "a") as out:
            out.write(why.replace("\n", " ") + "\n")
    sys.exit(STARTUP_FAILURE)


def cmd_demo(args: argparse.Namespace) -> int:
    from cost_api.tools.demo.run import run_demo

    written = run_demo(
        args.db,
        days=args.days,
        requests_per_day=args.requests_per_day,
        seed=args.seed,
        follow=args.follow,
        **({} if args.teams is None else {"teams": args.teams}),
    )
    print(f"cost-api demo: {written} rows written to {args.db}", file=sys.stderr)
    return 0


def cmd_pricing(args: argparse.Namespace) -> int:
    from cost_api.pricing import reports as pricing_tools
    from cost_api.web.service import load_pricing

    table = load_pricing(_settings(args))
    if args.pricing_command == "check":
        print(pricing_tools.check_report(table))
        return 0
    if args.pricing_command == "resolve":
        at = parse_instant("--at", args.at) if args.at else None  # what /v1/pricing/resolve's `at` takes
        code, text = pricing_tools.resolve_report(table, args.provider, args.model, at)
    else:
        code, text = pricing_tools.diff_genai_prices(table)
    print(text)
    return code


def cmd_report(args: argparse.Namespace) -> int:
    from cost_api.tools.report import report, showback, whatif_report

    settings = _settings(args)
    if args.by:
        fmt = args.format or "md"
        window = {"window": args.window, "to": args.to, "month": args.month, "tz": args.tz}
        text = asyncio.run(showback(settings, by=args.by, fmt=fmt, **window))
        print(text, end="")  # as the API answers it: a CSV's lines end in CRLF
        return 0
    if args.month or args.format:
        raise CliError("report: --month and --format go with --by (e.g. --by tag:team --month 2026-11)")
    if args.whatif or args.discount or args.book:
        text = asyncio.run(
            whatif_report(
                settings,
                window=args.window,
                to=args.to,
                tz=args.tz,
                maps=args.whatif,
                discounts=args.discount,
                book=args.book,
                group_by=args.group_by,
            )
        )
    else:
        text = asyncio.run(
            report(settings, window=args.window, to=args.to, tz=args.tz, top_window=args.top_window, top=args.top)
        )
    print(text)
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from cost_api.tools.smoke import smoke

    code, text = asyncio.run(smoke(_settings(args)))
    print(text)
    return code


def cmd_alerts(args: argparse.Namespace) -> int:
    from cost_api.tools.receiver import receive

    try:
        receive(args.host, args.port, args.secret)
    except OSError as exc:  # the port is taken, the host is not this machine's
        raise CliError(f"alerts receive: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from cost_api.config.docs import settings_table, with_settings_table

    if not args.write:
        print(settings_table())
        return 0
    path = Path(args.write)
    text = path.read_text()
    path.write_text(with_settings_table(text))
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _common_flags(parser: argparse.ArgumentParser, *, db: bool = True) -> None:
    if db:
        parser.add_argument("--db", help="database URL (overrides database_url)")
    parser.add_argument("--config", help="YAML config file (default: $COST_API_CONFIG)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cost-api",
        description="Every dollar of an LLM gateway's request log: a read-only analytics API and its tools.",
        epilog="cost-api COMMAND --help tells more of each; README.md lists them all.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the API")
    _common_flags(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without API keys")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="server processes, each with its own figures in memory (docs/deployment.md); default 1",
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="write a realistic demo log (only into a database it creates)")
    demo.add_argument("--db", required=True, help="sqlite:///demo.db or postgresql://…")
    demo.add_argument("--days", type=int, default=60)
    demo.add_argument("--requests-per-day", type=int, default=5000)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--follow", action="store_true", help="keep appending live rows")
    demo.add_argument("--teams", type=int, help="teams the tokens' tags name (api_tokens.tags; default 6)")
    demo.set_defaults(func=cmd_demo)

    pricing = sub.add_parser("pricing", help="check, resolve and diff the price table")
    psub = pricing.add_subparsers(dest="pricing_command", required=True)
    check = psub.add_parser("check", help="validate pricing files and list the entries")
    _common_flags(check, db=False)
    resolve = psub.add_parser("resolve", help="which entry and price a logged model gets")
    _common_flags(resolve, db=False)
    resolve.add_argument("provider")
    resolve.add_argument("model")
    resolve.add_argument("--at", help="RFC 3339 with an offset, or epoch milliseconds (default: now)")
    diff = psub.add_parser("diff", help="compare with the genai-prices package")
    _common_flags(diff, db=False)
    pricing.set_defaults(func=cmd_pricing)

    report = sub.add_parser("report", help="print the headline block (spend, savings, change, top lists)")
    _common_flags(report)
    report.add_argument("--window", default="30d", help="15m, 24h, 30d, … or today, week, month")
    report.add_argument("--to", help="end of the window: RFC 3339 or epoch ms (default: now)")
    report.add_argument("--tz", help="IANA zone for calendar windows (default: the configured tz)")
    report.add_argument("--top-window", default="7d", help="span of the top lists")
    report.add_argument("--top", type=int, default=3, help="rows per top list")
    report.add_argument(
        "--whatif",
        action="append",
        default=[],
        metavar="MAP",
        help="print the what-if instead: provider/model="
        "provider/model, the second instead of the first (repeatable; GET /v1/whatif's map)",
    )
    report.add_argument("--discount", action="append", default=[], help="what-if: provider:percent off (repeatable)")
    report.add_argument("--book", help="what-if: a price book of whatif_price_books")
    report.add_argument("--group-by", default="provider", help="what-if: provider, endpoint, token or model")
    report.add_argument(
        "--by", help="print the showback table instead: one row per key of /v1/spend's group_by (e.g. tag:team)"
    )
    report.add_argument("--month", help="showback: a calendar month of --tz, YYYY-MM (instead of --window/--to)")
    report.add_argument("--format", help="showback: md (default), csv or focus (a FinOps FOCUS 1.2 export)")
    report.set_defaults(func=cmd_report)

    smoke = sub.add_parser("smoke", help="run every registered query once; non-zero exit on any failure")
    _common_flags(smoke)
    smoke.set_defaults(func=cmd_smoke)

    alerts = sub.add_parser("alerts", help="try the alert webhook")
    asub = alerts.add_subparsers(dest="alerts_command", required=True)
    receive = asub.add_parser("receive", help="a local webhook receiver: prints events, checks signatures")
    receive.add_argument("--host", default="127.0.0.1")
    receive.add_argument("--port", type=int, default=9000)
    receive.add_argument("--secret", default=None, help="alerts.webhook_secret, to check X-Cost-Signature")
    alerts.set_defaults(func=cmd_alerts)

    docs = sub.add_parser("settings", help="print the settings table docs/configuration.md shows")
    docs.add_argument("--write", metavar="FILE", help="replace the generated table in FILE instead")
    docs.set_defaults(func=cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], Any] = args.func
    try:
        return int(func(args) or 0)
    except _FAILURES as exc:
        print(f"cost-api: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
