"""`validate` output: one problem per line (text), GitHub workflow annotations, or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TextIO

from reconciler.text import clean, one_line, plural

if TYPE_CHECKING:
    from reconciler.manifests.loader import CheckResult
    from reconciler.manifests.problems import Problem

FORMAT_VERSION = "1"


def summary(result: CheckResult) -> str:
    files, docs = len(result.files), result.documents
    errors = plural(len(result.problems), "error")
    if result.problems and not files:
        return f"{errors}; no manifest files found."
    if result.problems:
        return (f"{errors} in {result.files_with_problems} of {plural(files, 'file')} "
                f"({plural(docs, 'document')}).")
    verb = "is" if docs == 1 else "are"
    return f"{plural(docs, 'document')} in {plural(files, 'file')} {verb} valid."


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(problem: Problem) -> str:
    # Messages quote manifest values: strip terminal escapes, encode newlines (no injected commands).
    props = [f"file={_escape_property(clean(problem.file))}"]
    if problem.line > 0:
        props += [f"line={problem.line}", f"col={problem.column}"]
    return f"::error {','.join(props)}::{_escape_data(clean(problem.message))}"


def text_line(problem: Problem) -> str:
    """One problem on one line, whatever the manifest values it quotes contain."""
    return one_line(problem)


def render(result: CheckResult, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        doc = {
            "format_version": FORMAT_VERSION,
            "valid": not result.problems,
            "files": len(result.files),
            "documents": result.documents,
            "problems": [
                {"file": p.file, "line": p.line, "column": p.column, "path": p.path,
                 "message": p.message}
                for p in result.problems
            ],
        }
        out.write(json.dumps(doc, indent=2) + "\n")
        return
    for problem in result.problems:
        out.write((github_annotation(problem) if fmt == "github" else text_line(problem)) + "\n")
    out.write(summary(result) + "\n")
