"""`reconciler emulator`: serve the Vertex AI tuningJobs emulator until interrupted."""

from __future__ import annotations

import argparse

from reconciler.errors import ConfigError

HELP = "run a local emulator of the Vertex AI tuningJobs REST API (for tests and demos)"


def _project_number(text: str) -> tuple[str, str]:
    project, sep, number = text.partition("=")
    if not sep or not project or not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected PROJECT_ID=NUMBER, got {text!r}")
    return project, number


EPILOG = """\
Jobs go PENDING -> RUNNING -> SUCCEEDED over --job-duration seconds. To make a job fail, give it a
training dataset URI containing `fail` (e.g. gs://bucket/fail.jsonl): it ends FAILED with error
code 13. POST /__emulator/jobs/ID:setState changes a job's state out of band; see
reconciler/emulator/__init__.py for the admin API and what is modelled."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--job-duration", type=float, default=2.0, metavar="S",
                        help="seconds from create to SUCCEEDED (default: %(default)s)")
    parser.add_argument("--start-delay", type=float, default=None, metavar="S",
                        help="seconds from PENDING to RUNNING (default: 10%% of --job-duration)")
    parser.add_argument("--cancel-delay", type=float, default=None, metavar="S",
                        help="seconds from CANCELLING to CANCELLED (default: 10%% of --job-duration)")
    parser.add_argument("--latency-ms", type=float, default=0.0, metavar="N", help="latency added to API requests")
    parser.add_argument("--error-rate", type=float, default=0.0, metavar="R",
                        help="share of API requests answered 429 or 503 (0..1)")
    parser.add_argument("--drop-rate", type=float, default=0.0, metavar="R",
                        help="share of creates/rebases committed and then dropped without an answer (0..1)")
    parser.add_argument("--retry-after", type=int, default=1, metavar="S", help="Retry-After of injected 429s")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed for ids and faults (reproducible runs)")
    parser.add_argument("--token", default="emulator-token", metavar="T",
                        help="bearer token required on every request (default: %(default)s)")
    parser.add_argument("--any-token", action="store_true", help="accept any bearer token")
    parser.add_argument("--data", metavar="FILE", help="keep jobs and operations in FILE across restarts")
    parser.add_argument("--virtual-clock", action="store_true",
                        help="time moves only via POST /__emulator/advance")
    parser.add_argument("--project-number", action="append", type=_project_number, default=[],
                        metavar="ID=NUMBER", help="map a project id to its number (repeatable)")


def run(args: argparse.Namespace) -> int:
    from reconciler.emulator import server
    from reconciler.emulator.config import EmulatorConfig

    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        token=None if args.any_token else args.token,
        job_duration=args.job_duration,
        start_delay=args.start_delay,
        cancel_delay=args.cancel_delay,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        retry_after=args.retry_after,
        seed=args.seed,
        data_file=args.data,
        virtual_clock=args.virtual_clock,
        project_numbers=dict(args.project_number),
    )
    try:
        config.validate()
        app, persister = server.build(config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        sock = server.bind(config.host, config.port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    print(f"Listening on {server.url_for(config.host, port)}", flush=True)
    try:
        server.uvicorn_server(app).run(sockets=[sock])
    finally:
        sock.close()
        if persister is not None:
            persister.close()
    return 0
