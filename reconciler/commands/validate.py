"""`reconciler validate [PATHS...]`: check manifests offline and report every problem."""

from __future__ import annotations

import argparse
import sys

from reconciler.commands.options import add_cache_option, add_target_options, defaults

HELP = "check manifests against the schema, offline; report every problem"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="manifest files or directories, searched recursively for "
                             ".yaml/.yml (default: manifests/)")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text",
                        help="text (default), json, or github workflow annotations")
    add_target_options(parser)
    add_cache_option(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.manifests.cache import ManifestCache
    from reconciler.manifests.loader import check
    from reconciler.render.problems import render

    result = check(args.paths or None, defaults(args), cache=ManifestCache() if args.use_cache else None)
    render(result, args.format, sys.stdout)
    return 1 if result.problems else 0
