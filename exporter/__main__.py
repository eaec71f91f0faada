"""Command line.

::

    model-exporter serve [--config FILE] [--host H] [--port P]   the exporter (the default)
    model-exporter demo [--rate N] [--drift-after S]             exporter + simulated model server
    model-exporter replay FILE --model M [--url U] [...]         send a log of predictions
    model-exporter backtest FILE --model M --out F.om [...]      a log on its own clock
    model-exporter generate [--thresholds FILE] [--check]        alert rules and dashboards

``python -m exporter`` is the same program.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from exporter import __version__
from exporter.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-exporter",
        description="Prometheus exporter sidecar for ML model quality and drift.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the exporter (the default)")
    _serve_arguments(serve)
    from exporter import demo, replay

    demo.add_arguments(
        commands.add_parser(
            "demo",
            help="run the exporter with a simulated model server (drift after 3 minutes)",
            description=(demo.__doc__ or "").split("\n\n")[0].replace("``", ""),
        )
    )
    replay.add_arguments(
        commands.add_parser(
            "replay",
            help="send a CSV, Parquet or JSONL log of predictions to a running exporter",
            description=(replay.__doc__ or "").split("\n\n")[0].replace("``", ""),
        )
    )
    from exporter import backtest

    backtest.add_arguments(
        commands.add_parser(
            "backtest",
            help="run a log through the windows on its own clock; write the time series",
            description=(backtest.__doc__ or "").split("\n\n")[0].replace("``", ""),
        )
    )
    from exporter.monitoring import generate

    generate.add_arguments(
        commands.add_parser(
            "generate",
            help="render the alert rules and Grafana dashboards into deploy/",
            description=(generate.__doc__ or "").strip(),
        )
    )
    return parser


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("MODEL_EXPORTER_CONFIG"),
        help="YAML config file (default: $MODEL_EXPORTER_CONFIG, else built-in defaults)",
    )
    parser.add_argument("--host", help="listen address (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="listen port (default 17090)")
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    parser.add_argument(
        "--web-config",
        type=Path,
        help="exporter-toolkit web-config.yml: TLS and basic auth (config key web_config)",
    )


def serve(args: argparse.Namespace) -> int:
    from exporter import server
    from exporter.app import create_app
    from exporter.config import load_settings
    from exporter.runtime import freeze_startup_heap, tune_malloc
    from exporter.web_config import uvicorn_tls_options

    try:
        settings = load_settings(
            args.config,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            web_config=args.web_config,
        )
    except ConfigError as exc:
        print(f"model-exporter: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    tune_malloc()
    try:
        # Restored once the listeners are open (503 "starting" meanwhile), then the heap is
        # frozen again so that the restored state is out of the collector's reach too.
        app = create_app(settings, start_in_background=True, after_start=freeze_startup_heap)
    except ConfigError as exc:
        print(f"model-exporter: {exc}", file=sys.stderr)
        return 2
    freeze_startup_heap()  # see exporter/runtime.py: /metrics p99 56 -> 18 ms
    tls = uvicorn_tls_options(app.state.web_config)  # none without tls_server_config
    return server.serve(app, settings, options=tls)  # one worker; exits 0 after SIGTERM


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["serve", *argv]
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "demo":
        from exporter import demo

        try:
            return demo.run(args)
        except KeyboardInterrupt:
            return 0
    if args.command == "replay":
        from exporter import replay

        return replay.run(args)
    if args.command == "backtest":
        from exporter import backtest

        return backtest.run(args)
    if args.command == "generate":
        from exporter.monitoring import generate

        return generate.run(args)
    _parser().print_help()  # pragma: no cover - every command is handled above
    return 2


if __name__ == "__main__":
    sys.exit(main())
