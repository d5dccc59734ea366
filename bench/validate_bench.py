"""Benchmark `reconciler validate` against the naive way, side by side in one run.

Generates job documents spread over files in a temporary directory, then times:
- `reconciler validate DIR` end to end, as a subprocess (interpreter start-up included),
  first with nothing cached, then again with every file unchanged (from the manifest cache);
- the same check in-process (`reconciler.manifests.loader.check`), without start-up;
- the naive way: `yaml.safe_load_all` per file and `jsonschema.validate(doc, schema)` per
  document, which checks the schema and builds a new validator on every call.
The naive way takes about 0.1 s per document, so by default it runs on a sample of the
documents and its total is extrapolated (it is a per-document loop, so linear); pass
`--naive-docs 0` to run it on every document.

    python bench/validate_bench.py            # 10,000 documents in 100 files
    python bench/validate_bench.py --quick    # 200 documents in 4 files (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 1.2  # 10,000 documents, nothing cached
GOAL_SPEEDUP = 5.0

DOCUMENT = """\
# yaml-language-server: $schema=../schemas/manifest.schema.json
apiVersion: tuning.reconciler/v1
kind: TuningJob
metadata:
  name: job-{n:05d}
  project: bench-project
  location: {location}
spec:
  baseModel: gemini-2.5-flash
  tunedModelDisplayName: bench model {n}
  description: Benchmark job number {n}.
  supervisedTuningSpec:
    trainingDatasetUri: gs://bench-bucket/data/{n:05d}/train.jsonl
    validationDatasetUri: gs://bench-bucket/data/{n:05d}/validation.jsonl
    hyperParameters:
      epochCount: "{epochs}"
      adapterSize: ADAPTER_SIZE_FOUR
      learningRateMultiplier: 1.0
  labels:
    team: team-{team}
    batch: b{batch}
lifecycle:
  onSpecChange: replace
  onFailure: report
"""


def generate(directory: Path, documents: int, files: int) -> None:
    per_file = -(-documents // files)
    n = 0
    for f in range(files):
        chunk = []
        for _ in range(per_file):
            if n == documents:
                break
            chunk.append(DOCUMENT.format(n=n, location=("us-central1", "europe-west4")[n % 2],
                                         epochs=1 + n % 5, team=n % 7, batch=f))
            n += 1
        (directory / f"jobs-{f:03d}.yaml").write_text("---\n".join(chunk), encoding="utf-8")


def time_cli(directory: Path, cache: Path) -> tuple[float, int, str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(directory)],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    elapsed = time.perf_counter() - start
    return elapsed, proc.returncode, (proc.stdout.strip().splitlines() or [""])[-1]


def time_in_process(directory: Path) -> tuple[float, int, int]:
    from reconciler.manifests.loader import check

    start = time.perf_counter()
    result = check([str(directory)])
    return time.perf_counter() - start, result.documents, len(result.problems)


def time_naive(directory: Path, limit: int) -> tuple[float, int]:
    """yaml.safe_load_all + jsonschema.validate per document; stops after `limit` (0: all)."""
    import jsonschema
    import yaml

    schema = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text(encoding="utf-8"))
    done = 0
    start = time.perf_counter()
    for path in sorted(directory.glob("*.yaml")):
        with open(path, encoding="utf-8") as fh:
            for doc in yaml.safe_load_all(fh):
                jsonschema.validate(doc, schema)
                done += 1
                if limit and done >= limit:
                    return time.perf_counter() - start, done
    return time.perf_counter() - start, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--naive-docs", type=int, default=200,
                        help="documents to time the naive way on, then extrapolate (0: all)")
    parser.add_argument("--quick", action="store_true",
                        help="small run for smoke tests: 200 documents, 4 files, naive on 10")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.documents, args.files, args.naive_docs = 200, 4, 10

    with tempfile.TemporaryDirectory(prefix="validate-bench-") as tmp:
        directory, cache = Path(tmp) / "manifests", Path(tmp) / "cache"
        directory.mkdir()
        generate(directory, args.documents, args.files)
        cli_s, cli_rc, cli_summary = time_cli(directory, cache)  # nothing cached yet
        cached_s, cached_rc, _ = time_cli(directory, cache)
        inproc_s, documents, problems = time_in_process(directory)
        naive_s, naive_docs = time_naive(directory, args.naive_docs)
    naive_total = naive_s / naive_docs * documents
    figures = {
        "documents": documents,
        "files": args.files,
        "cpus": os.cpu_count(),
        "validate_cli_seconds": round(cli_s, 3),
        "validate_cli_exit": cli_rc,
        "validate_cli_summary": cli_summary,
        "validate_cli_cached_seconds": round(cached_s, 3),
        "validate_in_process_seconds": round(inproc_s, 3),
        "problems": problems,
        "naive_documents_timed": naive_docs,
        "naive_seconds_timed": round(naive_s, 3),
        "naive_seconds_per_document": round(naive_s / naive_docs, 5),
        "naive_seconds_total": round(naive_total, 1),
        "naive_total_extrapolated": naive_docs < documents,
        "speedup_vs_naive": round(naive_total / cli_s, 1),
        "goal_seconds": GOAL_SECONDS,
        "goal_speedup": GOAL_SPEEDUP,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        how = (f"measured on {naive_docs}, extrapolated" if figures["naive_total_extrapolated"]
               else "measured")
        print(f"{documents:,} documents in {args.files} files, {os.cpu_count()} CPUs")
        print(f"  reconciler validate (CLI, end to end): {cli_s:8.2f} s  exit {cli_rc}: "
              f"{cli_summary}")
        print(f"  ... again, every file unchanged:      {cached_s:8.2f} s  (from the manifest cache)")
        print(f"  reconciler validate (in-process):      {inproc_s:8.2f} s")
        print(f"  naive safe_load + jsonschema.validate: {naive_total:8.1f} s  ({how}; "
              f"{naive_s / naive_docs * 1000:.1f} ms per document)")
        print(f"  speed-up vs naive: {figures['speedup_vs_naive']}x (goal >= {GOAL_SPEEDUP:g}x); "
              f"goal <= {GOAL_SECONDS:g} s for 10,000 documents with nothing cached")
    ok = cli_rc == 0 and cached_rc == 0 and problems == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
