"""`reconciler import KEY JOB_NAME`: start tracking a job created outside the tool."""

from __future__ import annotations

import argparse

from reconciler.commands.options import add_cache_option, add_state_option, add_target_options, plan_request

HELP = "adopt an existing tuning job into state for a key the manifests declare"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="KEY", help="metadata.name of a manifest")
    parser.add_argument("job_name", metavar="JOB_NAME",
                        help="projects/P/locations/L/tuningJobs/ID, or the bare ID in the key's location")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="manifest files or directories (default: manifests/)")
    add_target_options(parser)
    add_state_option(parser)
    add_cache_option(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler import operations

    imported = operations.import_job(operations.ImportRequest(args.key, args.job_name, plan_request(args)))
    print(f"Imported {imported.job.name} ({imported.job.short_state}) as {imported.address}.\n"
          "Run `reconciler plan` to see whether it matches the manifest.")
    return 0
