"""Reading the user's files (`hubevo.files`) and every reader built on it, fed generated garbage.

The property: whatever bytes a file holds (random bytes, a valid file cut short, valid JSON or YAML of the wrong
shape, text in another encoding), each reader either reads it or raises its one typed error, one line that names
the file; never another exception. The readers: the run config, a member's config.json, tokenizer and weights,
a task's YAML and data file, a preference file, a run's state.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubevo.config import load_config
from hubevo.config.finetune import FinetuneSpace
from hubevo.errors import CompatibilityError, ConfigError, HubevoError, MemberNotFoundError, StateFileError
from hubevo.evaluation import taskcheck
from hubevo.files import MISSING, Problem, decode, file_problem, folder_problem, read_text
from hubevo.finetune.data import file_problems
from hubevo.seed.members import ResolvedMember, arch_signature, check_files, vocab_digest
from hubevo.seed.weights import check_weights
from hubevo.state.runstate import RunState, load_state
from tests.tiny_models import build_llama, write_generation_task

# the same examples on every run (a CI run never fails on a draw the last one did not make), nothing kept on disk
PROPERTY = settings(max_examples=int(os.environ.get("HUBEVO_GARBAGE_EXAMPLES", 60)), deadline=None, derandomize=True,
                    database=None, suppress_health_check=[HealthCheck.too_slow])


# the reader's clauses ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("data, fragment", [
    ("name: José\n".encode("latin-1"), "line 1 holds the byte 0xE9, which is 'é' in Latin-1"),
    ("a: 1\nquote: it’s\n".encode("cp1252"), "line 2 holds the byte 0x92, which is '’' in Latin-1"),
    ("name: x\n".encode("utf-16"), "is UTF-16 text (it starts with UTF-16's byte-order mark)"),
    ("name: x\n".encode("utf-16-le"), "is UTF-16 text (a zero byte beside every letter)"),
    ("name: x\n".encode("utf-32"), "is UTF-32 text"),
    (b"PK\x03\x04\x00\x00binary", "is binary data, not text"),
], ids=["latin1", "cp1252", "utf16-bom", "utf16-no-bom", "utf32", "binary"])
def test_text_that_is_not_utf8_is_named_with_the_encoding_it_is_in(data, fragment):
    problem = decode(data)
    assert isinstance(problem, Problem) and fragment in problem.text


def test_utf8_reads_with_or_without_its_byte_order_mark_and_yaml_may_take_utf16():
    assert decode("é\n".encode()) == decode("\ufeffé\n".encode()) == "é\n"
    assert decode("a: é\n".encode("utf-16"), boms=True) == "a: é\n"
    assert decode("é".encode() + "é".encode()[:1], cut=True) == "é"  # a prefix that cuts a character in two


def test_paths_that_are_not_readable_files_or_folders_say_what_they_are(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    assert file_problem(tmp_path / "nope") == MISSING
    assert file_problem(tmp_path / "folder").text == "is a folder, not a file"
    assert file_problem(tmp_path / "file" / "below").text == \
        f"cannot exist: {str(tmp_path / 'file')!r} is a file, not a folder"
    assert folder_problem(tmp_path / "file").text == "is a file, not a folder"
    assert file_problem(tmp_path / "file") is None and folder_problem(tmp_path / "folder") is None
    with pytest.raises(ConfigError) as err:
        read_text(tmp_path / "folder", what="run config", field="the command line", fix="pass a YAML file")
    assert str(err.value) == (f"the command line: run config {str(tmp_path / 'folder')!r} is a folder, not a file; "
                              "pass a YAML file")


# generated garbage ------------------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


def garbage(valid: bytes, *, as_yaml: bool = False) -> st.SearchStrategy[bytes]:
    """Bytes a file of `valid`'s kind may hold by accident: anything, `valid` cut short, `valid` with one field
    (to two levels deep) of another JSON type, any JSON value, text in another encoding."""
    dump = (lambda v: yaml.safe_dump(v).encode()) if as_yaml else (lambda v: json.dumps(v).encode())
    parsed = yaml.safe_load(valid) if as_yaml else json.loads(valid)
    paths = [(k,) for k in parsed] + [(k, inner) for k, v in parsed.items() if isinstance(v, dict) for inner in v]
    return st.one_of(
        st.binary(max_size=600),
        st.integers(0, len(valid)).map(lambda n: valid[:n]),
        st.tuples(st.sampled_from(paths), JSON).map(lambda change: dump(_replaced(parsed, *change))),
        JSON.map(dump),
        st.tuples(st.text(max_size=200), st.sampled_from(["latin-1", "utf-16", "utf-32", "cp1252"])).map(
            lambda te: te[0].encode(te[1], errors="replace")),
    )


def _replaced(data: dict, path: tuple, value) -> dict:
    data = json.loads(json.dumps(data))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def assert_named(err: HubevoError, file: Path, *, or_names: str | None = None) -> None:
    """hubevo's one-line error that names `file` (or, for a comparison of members, the member `or_names`)."""
    text = str(err)
    assert "\n" not in text, text
    assert str(file) in text or (or_names is not None and or_names in text), text


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("garbage")
    build_llama(root / "member", seed=1)
    write_generation_task(root / "tasks", "t", [{"q": "1+1=", "a": "2"}, {"q": "2+2=", "a": "4"}])
    return root


RUN = {"name": "g", "population": {"members": ["./a", "./b"]}, "fitness": {"tasks": ["t"], "limit": 4},
       "crossover": {"methods": ["linear"]}, "budget": {"generations": 1, "population_size": 2},
       "output": {"dir": "./run"}}


@PROPERTY
@given(data=garbage(yaml.safe_dump(RUN).encode(), as_yaml=True))
def test_the_run_config_reads_or_is_named(folder, data):
    path = folder / "run.yaml"
    path.write_bytes(data)
    try:
        load_config(path)
    except ConfigError as err:  # several fields: one line each, under a first line that names the file
        assert str(path) in str(err).splitlines()[0], str(err)


def _member(folder: Path, name: str, data: bytes) -> ResolvedMember:
    member = folder / "garbled"
    if not member.is_dir():
        shutil.copytree(folder / "member", member)
    (member / name).write_bytes(data)
    return ResolvedMember(label="garbled", source=str(member), path=member)


def assert_member_reads_or_is_named(member: ResolvedMember, file: Path) -> None:
    try:
        check_files(member)
        arch_signature(member.path), vocab_digest(member.path)
        check_weights(member)
    except (MemberNotFoundError, CompatibilityError) as err:
        assert_named(err, file, or_names=repr(member.label))


def _safetensors(valid: bytes) -> st.SearchStrategy[bytes]:
    """A safetensors file cut short, with random bytes, or with a header entry of another JSON type."""
    length = int.from_bytes(valid[:8], "little")
    header, body = valid[8:8 + length], valid[8 + length:]

    def with_header(new: bytes) -> bytes:
        return len(new).to_bytes(8, "little") + new + body
    return st.one_of(
        st.binary(max_size=600),
        st.integers(0, len(valid)).map(lambda n: valid[:n]),
        garbage(header).map(with_header),
    )


@PROPERTY
@pytest.mark.parametrize("name", ["config.json", "tokenizer.json", "model.safetensors"])
@given(data=st.data())
def test_a_members_files_read_or_are_named(folder, name, data):
    valid = (folder / "member" / name).read_bytes()
    member = _member(folder, name, data.draw(_safetensors(valid) if name.endswith(".safetensors") else garbage(valid)))
    try:
        assert_member_reads_or_is_named(member, member.path / name)
    finally:
        shutil.copy(folder / "member" / name, member.path / name)


def assert_one_line_each(problems: list[str], file: Path) -> None:
    for problem in problems:
        assert "\n" not in problem and str(file) in problem, problem


@PROPERTY
@given(data=st.data())
def test_a_tasks_data_file_reads_or_is_named(folder, data):
    file = folder / "tasks" / "t.jsonl"
    valid = json.dumps({"q": "1+1=", "a": "2"}).encode() + b"\n"
    file.write_bytes(data.draw(st.one_of(garbage(valid), st.lists(garbage(valid), max_size=4).map(b"\n".join))))
    assert_one_line_each(taskcheck.local_task_problems([folder / "tasks"], ["t"]), file)


@PROPERTY
@given(data=st.data())
def test_a_task_yaml_reads_or_is_named(folder, data):
    tasks = folder / "yaml-tasks"
    if not tasks.is_dir():
        shutil.copytree(folder / "tasks", tasks)
    file = tasks / "t.yaml"
    file.write_bytes(data.draw(garbage((folder / "tasks" / "t.yaml").read_bytes(), as_yaml=True)))
    assert_one_line_each(taskcheck.local_task_problems([tasks], ["t"]), file)
    assert_one_line_each(taskcheck.yaml_problems([tasks]), file)


@PROPERTY
@given(data=st.data())
def test_a_preference_file_reads_or_is_named(folder, data):
    file = folder / "prefs.jsonl"
    valid = json.dumps({"prompt": "1+1=", "chosen": "2", "rejected": "3"}).encode() + b"\n"
    file.write_bytes(data.draw(st.one_of(garbage(valid), st.lists(garbage(valid), max_size=4).map(b"\n".join))))
    space = FinetuneSpace(datasets=[{"path": str(file)}], samples=2, steps=(1, 2))
    assert_one_line_each(file_problems(space), file)


@PROPERTY
@given(data=st.data())
def test_a_run_state_reads_or_is_named(folder, data):
    run = folder / "run"
    run.mkdir(exist_ok=True)
    valid = RunState(config_hash="abc", generation=1, population=["a"]).model_dump_json().encode()
    (run / "state.json").write_bytes(data.draw(garbage(valid)))
    try:
        load_state(run)
    except StateFileError as err:
        assert_named(err, run / "state.json")
