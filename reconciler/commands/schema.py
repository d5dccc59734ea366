"""`reconciler schema generate [--check]` and `reconciler schema refresh-discovery`."""

from __future__ import annotations

import argparse
import sys

HELP = "generate the JSON Schemas from the pinned discovery snapshot, or refresh the snapshot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="schema_command", metavar="ACTION", required=True)
    gen = sub.add_parser("generate", help="write schemas/*.schema.json from the snapshots",
                         description="Write schemas/tuningjob.v1.schema.json, "
                                     "schemas/tuningjob.v1beta1.schema.json and "
                                     "schemas/manifest.schema.json from the pinned discovery "
                                     "snapshots.")
    gen.add_argument("--check", action="store_true",
                     help="write nothing; exit 1 if the files on disk differ from the output")
    gen.add_argument("--out", default=None, metavar="DIR",
                     help="directory to write to (default: the project's schemas/)")
    refresh = sub.add_parser(
        "refresh-discovery",
        help="re-trim the snapshots from the installed google-api-python-client",
        description="Re-create schemas/discovery/aiplatform.v1.tuning.json and "
                    "aiplatform.v1beta1.tuning.json from the aiplatform discovery documents "
                    "shipped in the installed google-api-python-client wheel (enum numbers from "
                    "the installed google-cloud-aiplatform's protos). Run `schema generate` "
                    "afterwards.")
    refresh.add_argument("--check", action="store_true",
                         help="write nothing; exit 1 if a snapshot differs from the "
                              "installed documents")


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from reconciler.apischema import discovery
    from reconciler.apischema import generate as schema_gen

    out_dir = Path(args.out) if args.out else discovery.schemas_dir()
    snapshots = discovery.load_snapshots()
    revisions = ", ".join(sorted({str(doc.get("revision")) for doc in snapshots.values()}))
    if args.check:
        stale = schema_gen.stale_files(out_dir, snapshots)
        for name in stale:
            print(f"{out_dir / name} is out of date; run `reconciler schema generate`",
                  file=sys.stderr)
        if not stale:
            print(f"Schemas in {out_dir} are up to date (discovery revision {revisions}).")
        return 1 if stale else 0
    changed = schema_gen.write_schemas(out_dir, snapshots)
    for name in changed:
        print(f"wrote {out_dir / name}")
    if not changed:
        print(f"Schemas in {out_dir} were already up to date.")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from reconciler.apischema import discovery
    from reconciler.apischema.versions import VERSIONS

    # Both snapshots are computed before either is written: a failure leaves neither changed.
    planned = []
    for version in VERSIONS:
        path = discovery.snapshot_path(version)
        snapshot, source = discovery.refreshed_snapshot(version)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        planned.append((path, discovery.dumps(snapshot), current, source, snapshot.get("revision")))
    if args.check:
        differing = [(path, source) for path, text, current, source, _ in planned if current != text]
        for path, source in differing:
            print(f"{path} differs from {source}; run `reconciler schema refresh-discovery`",
                  file=sys.stderr)
        for path, text, current, source, _ in planned:
            if current == text:
                print(f"{path} matches {source}.")
        return 1 if differing else 0
    wrote = False
    for path, text, current, source, revision in planned:
        if current == text:
            print(f"{path} already matches {source} (revision {revision}).")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path} (revision {revision})")
        wrote = True
    if wrote:
        print("now run `reconciler schema generate`")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.schema_command == "generate":
        return _generate(args)
    return _refresh(args)
