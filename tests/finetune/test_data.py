"""Preference data that cannot give rows is one ConfigError naming the file, whether the cheap preflight read or
`datasets` finds it (an empty file, garbage, a folder of either), never a traceback."""

from __future__ import annotations

import json

import pytest

from hubevo.config.finetune import FinetuneSpace
from hubevo.errors import ConfigError
from hubevo.finetune.data import check_sources, file_problems

ROW = {"prompt": "1+1=", "chosen": "2", "rejected": "3"}


def space(path) -> FinetuneSpace:
    return FinetuneSpace.model_validate({"datasets": [{"path": str(path)}]})


@pytest.mark.parametrize("name, text, fragment", [
    ("empty.jsonl", "", "is empty: it holds no rows"),
    ("blank.jsonl", "\n \n", "is empty"),
    ("garbage.jsonl", "hello\n", "line 1 is not JSON"),
    ("late-garbage.jsonl", json.dumps(ROW) + "\n{oops\n", "line 2 is not JSON"),
    ("numbers.jsonl", "1\n2\n", "line 1 is a JSON int, not an object"),
    ("empty-list.json", "[]", "holds an empty JSON list"),
    ("broken.json", '[{"prompt": 1}', "is not valid JSON (line 1"),
    ("fake.parquet", "not parquet", "is not a Parquet file"),
])
def test_a_local_file_without_rows_is_one_line_naming_it(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    [problem] = file_problems(space(path))
    assert problem.startswith(f"mutation.finetune.datasets.0: preference dataset {str(path)!r} ") and fragment in problem
    with pytest.raises(ConfigError) as err:
        check_sources(space(path))
    assert "\n" not in str(err.value) and str(path) in str(err.value) and fragment in str(err.value)


@pytest.mark.parametrize("text, fragment", [("", "cannot read preference dataset"),
                                            ("hello\n", "cannot read preference dataset")], ids=["empty", "garbage"])
def test_a_folder_of_bad_files_read_by_datasets_is_one_line(tmp_path, text, fragment):
    folder = tmp_path / "prefs"
    folder.mkdir()
    (folder / "train.jsonl").write_text(text)
    with pytest.raises(ConfigError) as err:
        check_sources(space(folder))
    message = str(err.value)
    assert "\n" not in message and str(folder) in message and fragment in message


def test_good_rows_pass(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
    assert file_problems(space(path)) == []
    check_sources(space(path))
    (tmp_path / "prefs.json").write_text(json.dumps([ROW]))
    assert file_problems(space(tmp_path / "prefs.json")) == []
