"""``gspauth emulator serve``: run the GSTN + GSP emulator as an HTTP server."""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import signal
import sys
import threading
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``gspauth emulator`` to the ``gspauth`` sub-command parsers."""
    parser = subparsers.add_parser(
        "emulator", help="local GSTN + ClearTax/Vayana emulator",
        description="A strict local emulator of GSTN and the ClearTax and Vayana GSP layers.",
    )
    sub = parser.add_subparsers(dest="emulator_command", metavar="SUBCOMMAND")
    serve = sub.add_parser("serve", help="serve the emulator over HTTP (prints its URL)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    serve.add_argument("--state-dir", help="keep keys, registry, sessions and saved data here (SQLite); "
                                           "default: in memory")
    serve.add_argument("--seed", type=int, help="seed for OTPs, tokens, keys (deterministic runs)")
    serve.add_argument("--sandbox-otp", action="store_true", help="every OTP is 575757 (explicit sandbox mode)")
    serve.add_argument("--clock", help="start the emulator clock at this ISO-8601 time")
    serve.add_argument("--frozen-clock", action="store_true", help="the clock moves only through the admin API")
    serve.add_argument("--token-life", type=int, metavar="MINUTES", help="auth token life (default 360)")
    serve.add_argument("--otp-validity", type=int, metavar="SECONDS", help="OTP validity (default 600)")
    serve.add_argument("--max-sessions", type=int, help="sessions per user per GSP (default 3)")
    serve.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    serve.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 503")
    serve.add_argument("--rate-429", type=float, default=0.0, help="fraction of requests answered 429")
    serve.add_argument("--drop-rate", type=float, default=0.0, help="fraction of connections dropped")
    serve.add_argument("--drop-after-rate", type=float, default=0.0,
                       help="fraction of requests processed (a save stored) and then dropped unanswered")
    serve.add_argument("--slow-rate", type=float, default=0.0,
                       help="fraction of requests delayed by --slow-ms before processing (client timeouts)")
    serve.add_argument("--slow-ms", type=float, default=0.0, help="delay of a slow request (milliseconds)")
    serve.add_argument("--fault-actions", default="", metavar="A,B",
                       help="inject faults only into these GSTN actions, e.g. RETSAVE,RETSTATUS (default: all)")
    serve.add_argument("--retstatus-delay", type=int, metavar="SECONDS",
                       help="RETSTATUS answers IP this long after a save (emulator clock; default 0)")
    serve.add_argument("--max-body-bytes", type=int, metavar="BYTES",
                       help="largest request body accepted (default 10485760; larger: HTTP 413 GEN5413)")
    serve.add_argument("--no-sample-taxpayers", action="store_true", help="do not register the sample taxpayers")
    serve.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    serve.add_argument("--access-log", action="store_true",
                       help="log each request line (FILEDET tokens and file ids redacted)")
    serve.set_defaults(func=_serve)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _serve(args: argparse.Namespace) -> int:
    from gspauth.emulator import EmulatorConfig, FaultConfig, defaults
    from gspauth.emulator.outbox import OTP_FILE
    from gspauth.emulator.server import ThreadedEmulator

    config = EmulatorConfig(
        seed=args.seed, state_dir=os.path.abspath(args.state_dir) if args.state_dir else None,
        sandbox_otp=args.sandbox_otp, clock_frozen=args.frozen_clock,
        clock_start=_dt.datetime.fromisoformat(args.clock) if args.clock else None,
        register_sample_taxpayers=not args.no_sample_taxpayers,
        faults=FaultConfig(latency_ms=args.latency_ms, error_5xx_rate=args.error_rate, rate_429=args.rate_429,
                           drop_rate=args.drop_rate, drop_after_rate=args.drop_after_rate, slow_rate=args.slow_rate,
                           slow_ms=args.slow_ms,
                           actions=tuple(a.strip() for a in args.fault_actions.split(",") if a.strip())),
    )  # fmt: skip
    if args.retstatus_delay is not None:
        config.retstatus_delay_seconds = args.retstatus_delay
    if args.max_body_bytes is not None:
        config.max_request_body_bytes = args.max_body_bytes
    if args.token_life is not None:
        config.token_life_minutes = args.token_life
    if args.otp_validity is not None:
        config.otp_validity_seconds = args.otp_validity
    if args.max_sessions is not None:
        config.max_sessions_per_user = args.max_sessions
    try:
        config.validate()
    except ValueError as exc:  # a bad flag value: one line and the usage exit code, no traceback
        print(f"gspauth emulator serve: {exc}", file=sys.stderr)
        return 2
    server = ThreadedEmulator(config=config, host=args.host, port=args.port, log_level=args.log_level,
                              access_log=args.access_log)
    server.start()
    url = server.url
    emu = server.emulator
    lines = [
        f"gspauth emulator listening on {url}",
        f"  GSTN certificate: {url}/_emulator/certificate.pem  {url}/_emulator/certificate.der",
    ]
    paths = emu.certificate_paths()
    if paths:
        lines.append(f"  GSTN certificate files: {paths['pem']}  {paths['der']}")
        lines.append(f"  OTP outbox file: {os.path.join(emu.state_dir or '', OTP_FILE)}")
    lines += [
        f"  layers: {url}/gstn  {url}/cleartax  {url}/cleartax-legacy  {url}/vayana/gus",
        f"  admin: {url}/_emulator/   OTP outbox: {url}/_emulator/outbox/otp?gstin=GSTIN",
        f"  sample taxpayers: {', '.join(f'{t.gstin} ({t.username})' for t in defaults.SAMPLE_TAXPAYERS)}"
        if config.register_sample_taxpayers else "  no sample taxpayers",
        "  credentials: see gspauth.emulator.defaults (ClearTax X-CT-Auth-Token, Vayana ASP, GSTN clientid)",
    ]
    print("\n".join(lines), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        emu.close()
        print("gspauth emulator stopped", file=sys.stderr, flush=True)
    return 0
