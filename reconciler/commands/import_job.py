"""`reconciler import KEY JOB_NAME`: start tracking a job created outside the tool."""

from __future__ import annotations

import argparse

HELP = "adopt an existing tuning job into state for a key the manifests declare"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reconciler.cli import add_state_option, add_target_options

    parser.add_argument("key", metavar="KEY", help="metadata.name of a manifest")
    parser.add_argument("job_name", metavar="JOB_NAME",
                        help="projects/P/locations/L/tuningJobs/ID, or the bare ID in the key's location")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="manifest files or directories (default: manifests/)")
    add_target_options(parser)
    add_state_option(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.api.client import NotFoundError
    from reconciler.errors import PlanError
    from reconciler.plan.live import LiveJob
    from reconciler.apischema.normalize import spec_hash
    from reconciler.state.model import StateEntry
    from reconciler.state.store import StateStore
    from reconciler.operations import load_desired, open_client

    args.parallelism = 1
    matches = [d for d in load_desired(args) if d.key == args.key or d.address == args.key]
    if not matches:
        raise PlanError(f"no manifest declares key {args.key!r}: add it to the manifests before importing")
    if len(matches) > 1:
        raise PlanError(f"key {args.key!r} is declared in several locations: "
                        + ", ".join(d.address for d in matches) + "; give project/location/key")
    d = matches[0]
    job_id = _job_id(args.job_name, d.location)
    store = StateStore(args.state)
    with store.lock("import", timeout=args.lock_timeout), open_client(args) as client:
        state = store.load()
        existing = state.entries.get(d.address)
        if existing and existing.job_name:
            raise PlanError(f"{d.address} already tracks {existing.job_name}; "
                            f"run `reconciler state rm {d.key}` first to import another job")
        # Fetched through the key's own project and location: a job of another project is a 404.
        try:
            job = LiveJob.from_api(client.get_job(f"{d.parent}/tuningJobs/{job_id}"))
        except NotFoundError:
            raise PlanError(f"no tuning job {job_id} in {d.parent} (the project and location of "
                            f"{d.address})") from None
        for other in state.entries.values():
            if job.name == other.job_name or (job.name in other.history and other.address != d.address):
                raise PlanError(f"{job.name} is already tracked as {other.address}")
        if job.key is not None and job.key != d.key:
            raise PlanError(f"{job.name} is labelled for key {job.key!r}, not {d.key!r}")
        entry = StateEntry(key=d.key, project=d.project, location=d.location, job_name=job.name,
                           spec_hash=spec_hash(job.raw), job_state=job.state, update_time=job.update_time,
                           history=list(existing.history) if existing else [], imported=job.key is None)
        store.record(entry, d.address)
        store.commit()
    print(f"Imported {job.name} ({job.short_state}) as {d.address}.\n"
          "Run `reconciler plan` to see whether it matches the manifest.")
    return 0


def _job_id(job_name: str, location: str) -> str:
    """The numeric id of `job_name` (a full name or a bare id), checking a full name's location."""
    from reconciler.errors import PlanError

    parts = job_name.strip("/").split("/")
    if len(parts) == 1 and parts[0].isdigit():
        return parts[0]
    if (len(parts) == 6 and parts[0] == "projects" and parts[2] == "locations" and parts[4] == "tuningJobs"
            and parts[5].isdigit()):
        if parts[3] != location:
            raise PlanError(f"{job_name} is in location {parts[3]}, but the key is in {location}")
        return parts[5]
    raise PlanError(f"invalid job name {job_name!r}: expected projects/P/locations/L/tuningJobs/ID or the bare ID")
