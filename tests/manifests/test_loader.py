"""Reading manifests: files, YAML with positions, hostile input, defaults, key uniqueness."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.manifests import loader as manifest
from reconciler.manifests import yaml_reader
from reconciler.model import Defaults, Lifecycle, SourcePos

JOB = """\
apiVersion: tuning.reconciler/v1
kind: TuningJob
metadata:
  name: {name}
  project: my-project
  location: us-central1
spec:
  baseModel: gemini-2.5-flash
  supervisedTuningSpec:
    trainingDatasetUri: gs://my-bucket/train.jsonl
"""


def write(root: Path, name: str, text: str) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def problems(paths: list[str], defaults: Defaults = Defaults()) -> list[str]:
    return [str(p) for p in manifest.check(paths, defaults).problems]


# --- YAML with positions --------------------------------------------------------------

def test_positions_of_values_and_keys() -> None:
    text = JOB.format(name="a") + "---\n" + JOB.format(name="b")
    parsed = yaml_reader.parse_text(text, "f.yaml")
    assert parsed.problems == []
    first, second = parsed.documents
    assert first.start == (1, 1) and second.start == (12, 1)
    assert first.keys[("spec", "supervisedTuningSpec", "trainingDatasetUri")] == (10, 5)
    assert first.values[("spec", "supervisedTuningSpec", "trainingDatasetUri")] == (10, 25)
    assert second.values[("metadata", "name")] == (15, 9)
    assert second.data["metadata"]["name"] == "b"


def test_scalars_follow_yaml_but_dates_stay_text() -> None:
    parsed = yaml_reader.parse_text(
        "a: 3\nb: '3'\nc: 1.5\nd: true\ne: null\nf: 2024-01-02\ng: 2024-01-02T03:04:05Z\n", "f")
    assert parsed.documents[0].data == {"a": 3, "b": "3", "c": 1.5, "d": True, "e": None,
                                        "f": "2024-01-02", "g": "2024-01-02T03:04:05Z"}


def test_merge_keys_and_aliases() -> None:
    text = """\
    base: &base {epochCount: "3", adapterSize: ADAPTER_SIZE_FOUR}
    a: {<<: *base, epochCount: "5"}
    b: *base
    """
    doc = yaml_reader.parse_text(textwrap.dedent(text), "f").documents[0]
    assert doc.data["a"] == {"epochCount": "5", "adapterSize": "ADAPTER_SIZE_FOUR"}
    assert doc.data["b"] == {"epochCount": "3", "adapterSize": "ADAPTER_SIZE_FOUR"}
    assert doc.has_aliases and not doc.problems


def test_duplicate_keys_are_errors_naming_the_first(tmp_path: Path) -> None:
    f = write(tmp_path, "m.yaml", JOB.format(name="a") + "  baseModel: other\n")
    assert problems([f]) == [
        f"{f}:11:3: duplicate key `baseModel` in `spec` (first set at line 8, column 3)"]


def test_non_string_keys_say_quote_it(tmp_path: Path) -> None:
    f = write(tmp_path, "m.yaml", JOB.format(name="a") + "  labels: {on: x}\n")
    found = problems([f])
    assert found[0] == (f"{f}:11:12: mapping key `on` in `spec.labels` is read by YAML as "
                        "a boolean, not a string; quote it")


def test_unsupported_tags(tmp_path: Path) -> None:
    f = write(tmp_path, "m.yaml", JOB.format(name="a") + "  description: !!binary aGVsbG8=\n")
    assert problems([f]) == [f"{f}:11:16: unsupported YAML tag `!!binary`; "
                             "manifests use plain strings, numbers, booleans, lists and mappings"]


# --- hostile and broken input ----------------------------------------------------------

def test_empty_and_comment_only_files(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.yaml", "")
    comments = write(tmp_path, "comments.yaml", "# nothing here\n")
    assert problems([empty, comments]) == [
        f"{empty}: no YAML documents in file (empty)",
        f"{comments}: no YAML documents in file (empty)",
    ]


def test_bare_scalar_and_list_documents(tmp_path: Path) -> None:
    f = write(tmp_path, "m.yaml", "just a string\n---\n- a\n- b\n")
    assert problems([f]) == [
        f"{f}:1:1: a manifest document must be a mapping with apiVersion, kind, metadata and "
        "spec; this one is a string",
        f"{f}:3:1: a manifest document must be a mapping with apiVersion, kind, metadata and "
        "spec; this one is a list",
    ]


def test_empty_documents_between_separators_are_skipped(tmp_path: Path) -> None:
    f = write(tmp_path, "m.yaml", "---\n" + JOB.format(name="a") + "---\n---\n")
    result = manifest.check([f])
    assert result.problems == [] and result.documents == 1


def test_non_utf8_and_binary_files(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"apiVersion: x\ndescription: caf\xe9\n")
    binary = tmp_path / "blob.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert problems([str(latin), str(binary)]) == [
        f"{latin}:2:17: not UTF-8 text: byte 0xe9 cannot be decoded; save the file as UTF-8",
        f"{binary}: binary file (contains NUL bytes), not YAML text",
    ]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "bom.yaml"
    f.write_bytes(b"\xef\xbb\xbf" + JOB.format(name="a").encode())
    assert problems([str(f)]) == []


def test_tabs_get_a_clear_message(tmp_path: Path) -> None:
    f = write(tmp_path, "m.yaml", "apiVersion: tuning.reconciler/v1\nspec:\n\tbaseModel: x\n")
    assert problems([f]) == [f"{f}:3:1: tab character in indentation or before a value: "
                             "YAML indents with spaces only"]


def test_syntax_errors_have_positions(tmp_path: Path) -> None:
    f = write(tmp_path, "m.yaml", "a: [1, 2\nb: 3\n")
    (found,) = problems([f])
    assert found.startswith(f"{f}:2:2: invalid YAML: ")


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    f = write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")
    found = problems([f])  # stopped at the value limit: bounded work, whatever the machine
    assert len(found) == 1
    assert found[0].startswith(f"{f}:")
    assert found[0].endswith('document has more than 100,000 values (through aliases, a '
                             '"billion laughs"?); refusing to read this file any further')


def test_recursive_and_undefined_aliases(tmp_path: Path) -> None:
    rec = write(tmp_path, "rec.yaml", "a: &x [1, *x]\n")
    undefined = write(tmp_path, "undef.yaml", "a: *nope\n")
    found = problems([rec, undefined])
    assert found[0] == f"{rec}:1:11: alias `*x` refers to its own enclosing node (recursive)"
    assert found[1].startswith(f"{undefined}:1:4: ")
    assert "nope" in found[1]


def test_deep_nesting_is_refused_without_crashing(tmp_path: Path) -> None:
    depth = 200_000  # the C composer would crash the process on this
    f = write(tmp_path, "deep.yaml", "a: " + "[" * depth + "]" * depth + "\n")
    block = write(tmp_path, "block.yaml", "".join("  " * i + f"k{i}:\n" for i in range(100))
                  + "  " * 100 + "v\n")
    found = problems([f, block])
    message = "nesting deeper than 64 levels; refusing to read this file any further"
    # Our limit stops at column 67; a libyaml with its own flow-depth limit (1000) stops the
    # scanner first. Either way the same refusal, on line 1, well before the end.
    assert re.fullmatch(re.escape(f"{f}:1:") + r"(\d+): " + re.escape(message), found[0])
    assert int(found[0].split(":")[2]) in (yaml_reader.MAX_DEPTH + 3, 1003)
    assert found[1] == (f"{block}:{yaml_reader.MAX_DEPTH + 1}:{2 * yaml_reader.MAX_DEPTH + 1}: "
                        + message)
    assert len(found) == 2


def test_too_many_values_without_aliases(tmp_path: Path) -> None:
    f = write(tmp_path, "big.yaml", "a: [" + "1, " * 150_000 + "1]\n")
    assert problems([f]) == [f"{f}:1:299999: document has more than 100,000 values (a tuning "
                             "job has about 50); refusing to read this file any further"]


def test_a_file_full_of_errors_is_cut_short(tmp_path: Path) -> None:
    f = write(tmp_path, "many.yaml", "---\na: 1\n" * 100_000)
    found = problems([f])
    assert len(found) == manifest.MAX_PROBLEMS_PER_FILE + 1
    assert found[-1] == f"{f}: 200 problems in this file; stopped reading it there"


def test_other_documents_in_a_file_survive_an_aborted_one(tmp_path: Path) -> None:
    f = write(tmp_path, "m.yaml", "a: *nope\n---\n" + JOB.format(name="ok"))
    result = manifest.check([f])
    assert result.documents == 2 and [j.key for j in result.jobs] == ["ok"]
    assert len(result.problems) == 1


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "huge.yaml"
    with open(f, "wb") as fh:
        fh.truncate(manifest.MAX_FILE_BYTES + 1)
    assert problems([str(f)]) == [
        f"{f}: file is 10.5 MB; manifest files over 10 MB are refused"]


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    f = tmp_path / "secret.yaml"
    f.write_text(JOB.format(name="a"))
    f.chmod(0)
    assert problems([str(f)])[0].startswith(f"{f}: cannot read file")


# --- finding files ---------------------------------------------------------------------

def test_find_files_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ("b.yaml", "a.yml", "sub/c.yaml", "sub/deeper/d.yaml", "notes.txt",
                 ".hidden/e.yaml", "sub/.f.yaml"):
        write(tmp_path, name, "x: 1\n")
    files, found = manifest.find_files([str(tmp_path)])
    rel = [Path(f).relative_to(tmp_path).as_posix() for f in files]
    assert rel == ["a.yml", "b.yaml", "sub/c.yaml", "sub/deeper/d.yaml"]
    assert found == []


def test_find_files_explicit_files_and_duplicates(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "x: 1\n")
    other = write(tmp_path, "job.manifest", "x: 1\n")
    files, found = manifest.find_files([a, str(tmp_path), other])
    assert files == [a, other] and found == []


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write(tmp_path, "empty/readme.md", "# not a manifest\n")
    assert problems([str(tmp_path / "nope"), str(tmp_path / "empty")]) == [
        f"{tmp_path / 'nope'}: no such file or directory",
        f"{tmp_path / 'empty'}: no manifests here: no .yaml or .yml files in this directory "
        "or below it",
    ]


def test_special_files_are_not_read() -> None:
    assert problems(["/dev/null"]) == ["/dev/null: not a regular file or directory: it is a character device"]


def test_default_path_is_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "manifests/team/a.yaml", JOB.format(name="a"))
    result = manifest.check(None)
    assert result.files == ["manifests/team/a.yaml"] and result.problems == []


# --- project/location defaults and key uniqueness --------------------------------------

NO_TARGET = """\
apiVersion: tuning.reconciler/v1
kind: TuningJob
metadata:
  name: {name}
spec:
  baseModel: gemini-2.5-flash
  supervisedTuningSpec: {{trainingDatasetUri: "gs://my-bucket/t.jsonl"}}
"""


def test_project_and_location_precedence(tmp_path: Path) -> None:
    f = write(tmp_path, "m.yaml", NO_TARGET.format(name="a") + "---\n" + JOB.format(name="b"))
    env = {"GOOGLE_CLOUD_PROJECT": "env-project", "GOOGLE_CLOUD_LOCATION": "env-location"}
    jobs = manifest.check([f], Defaults.resolve(None, None, env)).jobs
    assert [(j.key, j.project, j.location) for j in jobs] == [
        ("a", "env-project", "env-location"), ("b", "my-project", "us-central1")]
    jobs = manifest.check([f], Defaults.resolve("flag-project", "europe-west4", env)).jobs
    assert [(j.project, j.location) for j in jobs] == [
        ("flag-project", "europe-west4"), ("my-project", "us-central1")]


def test_missing_project_and_location_say_where_to_set_them(tmp_path: Path) -> None:
    f = write(tmp_path, "m.yaml", NO_TARGET.format(name="a"))
    assert problems([f]) == [
        f"{f}:3:1: no project for `a`: set `metadata.project`, pass --project, "
        "or set $GOOGLE_CLOUD_PROJECT",
        f"{f}:3:1: no location for `a`: set `metadata.location`, pass --location, "
        "or set $GOOGLE_CLOUD_LOCATION",
    ]
    assert problems([f], Defaults.resolve("p", None, {"GOOGLE_CLOUD_LOCATION": "l"})) == []


def test_key_unique_per_project_and_location_naming_both_places(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", JOB.format(name="same"))
    b = write(tmp_path, "sub/b.yaml", "# another\n" + JOB.format(name="same"))
    other_location = write(tmp_path, "c.yaml", JOB.format(name="same").replace(
        "us-central1", "europe-west4"))
    result = manifest.check([str(tmp_path)])
    assert [str(p) for p in result.problems] == [
        f"{b}:2:1: key `same` is defined twice for project `my-project`, location "
        f"`us-central1`: here and at {a}:1:1"]
    assert sorted(j.location for j in result.jobs) == ["europe-west4", "us-central1"]
    assert other_location


# --- load_desired ----------------------------------------------------------------------

def test_load_desired_builds_jobs(tmp_path: Path) -> None:
    text = JOB.format(name="a") + textwrap.dedent("""\
      labels: {team: support}
    lifecycle:
      onSpecChange: wait
      onFailure: recreate
      onBaseModelChange: rebase
      preventCancel: true
      ignoreDrift: [labels.team]
    ---
    """) + JOB.format(name="b")
    f = write(tmp_path, "m.yaml", text)
    a, b = manifest.load_desired([f])
    assert a.key == "a" and a.address == "my-project/us-central1/a"
    assert a.spec == {"baseModel": "gemini-2.5-flash", "labels": {"team": "support"},
                      "supervisedTuningSpec": {"trainingDatasetUri": "gs://my-bucket/train.jsonl"}}
    assert a.lifecycle == Lifecycle("wait", "recreate", "rebase", True, ("labels.team",))
    assert a.source == SourcePos(f, 1, 1)
    assert b.lifecycle == Lifecycle() and b.source == SourcePos(f, 19, 1)


def test_load_desired_raises_with_every_problem(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", JOB.format(name="Bad_Name"))
    b = write(tmp_path, "b.yaml", JOB.format(name="ok").replace("baseModel", "baseModle"))
    with pytest.raises(ManifestError) as info:
        manifest.load_desired([a, b])
    lines = str(info.value).splitlines()
    assert lines[0] == "2 problems in the manifests:"
    assert lines[1].startswith(f"{a}:4:9: `Bad_Name` is not a valid name")
    assert lines[2] == f"{b}:8:3: unknown field `spec.baseModle`; did you mean `baseModel`?"
    assert [p.line for p in info.value.problems] == [4, 8]


def test_aliased_specs_are_not_shared_between_jobs(tmp_path: Path) -> None:
    text = JOB.format(name="a") + "  labels: &l {team: x}\n  description: d\n"
    text = text.replace("  baseModel: gemini-2.5-flash\n",
                        "  baseModel: gemini-2.5-flash\n  tunedModelDisplayName: &n name\n")
    text += "lifecycle: {ignoreDrift: [*n]}\n"
    f = write(tmp_path, "m.yaml", text)
    (job,) = manifest.load_desired([f])
    assert job.spec["tunedModelDisplayName"] == "name" and job.lifecycle.ignore_drift == ("name",)


def test_parallel_check_matches_sequential(tmp_path: Path) -> None:
    for i in range(6):
        body = "---\n".join(JOB.format(name=f"job-{i}-{n}") for n in range(20))
        if i == 3:
            body += "---\n" + JOB.format(name="broken").replace("baseModel", "baseModal")
        write(tmp_path, f"f{i}.yaml", body)
    seq = manifest.check([str(tmp_path)], workers=1)
    par = manifest.check([str(tmp_path)], workers=2)
    assert par == seq
    assert seq.documents == 121 and len(seq.jobs) == 120 and len(seq.problems) == 1


def test_auto_workers_only_for_large_inputs(tmp_path: Path) -> None:
    small = [write(tmp_path, f"s{i}.yaml", JOB.format(name=f"s{i}")) for i in range(3)]
    assert manifest._auto_workers(small) == 1


def test_pure_python_loader_behaves_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libyaml PyYAML falls back to its Python parser: same values, positions, limits."""
    import yaml

    class PythonLoader(yaml.SafeLoader):
        pass

    text = JOB.format(name="a") + "  labels: &l {team: x}\n  description: d\n  labels: *l\n"
    c_doc = yaml_reader.parse_text(text, "f").documents[0]
    monkeypatch.setattr(yaml_reader, "ManifestLoader", PythonLoader)
    py = yaml_reader.parse_text(text, "f")
    py_doc = py.documents[0]
    assert (py_doc.data, py_doc.values, py_doc.keys) == (c_doc.data, c_doc.values, c_doc.keys)
    assert [p.message for p in py_doc.problems] == [p.message for p in c_doc.problems] == [
        "duplicate key `labels` in `spec` (first set at line 11, column 3)"]
    deep = yaml_reader.parse_text("a: " + "[" * 10_000 + "]" * 10_000, "f")
    assert [p.message for p in deep.problems] == [
        "nesting deeper than 64 levels; refusing to read this file any further"]
