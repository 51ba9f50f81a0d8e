"""What hubevo writes gets the mode a plain `open(path, "w")` or `mkdir` gives: 0666 or 0777 less the umask.

With the common umask 022 a run's weights, cards, recipes and state are 0644 in 0755 folders, so that the other
users of a shared machine read a published model; with 077 they are 0600 and 0700, as the user asked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
import yaml

from hubevo.cli.main import main
from hubevo.fsio import atomic_dir, atomic_write_bytes, atomic_write_text, claim_run_folder
from hubevo.run.lock import run_lock
from hubevo.state.runstate import load_state
from tests.helpers.bad_input import build_world, good
from tests.tiny_models import build_llama, build_tokenizer

torch.set_num_threads(1)


@pytest.fixture(params=[0o022, 0o077], ids=["umask-022", "umask-077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def odd_modes(root: Path, *, umask: int) -> dict[str, str]:
    """Paths at or under `root` whose mode is not what `open`/`mkdir` would give under `umask`."""
    odd = {}
    for path in [root, *sorted(root.rglob("*"))]:
        if path.is_symlink():
            continue
        want = (0o777 if path.is_dir() else 0o666) & ~umask
        if stat.S_IMODE(path.stat().st_mode) != want:
            odd[path.relative_to(root.parent).as_posix()] = oct(stat.S_IMODE(path.stat().st_mode))
    return odd


def test_the_atomic_writers_give_what_open_and_mkdir_would(tmp_path, umask):
    run = tmp_path / "run"
    claim_run_folder(run)
    atomic_write_text(run / "state.json", "{}")
    atomic_write_bytes(run / "nested" / "blob.bin", b"\x00\x01")
    atomic_write_text(run / "state.json", '{"again": 1}')  # a replaced file too
    with atomic_dir(run / "models" / "child") as tmp:  # a survivor folder: transformers writes into it
        build_llama(tmp / "unused", seed=0)  # a model folder inside, as save_pretrained writes it
        build_tokenizer().save_pretrained(tmp)
        (tmp / "README.md").write_text("card")
    with run_lock(run):
        pass
    assert (run / "models" / "child" / "unused" / "model.safetensors").is_file()
    assert odd_modes(run, umask=umask) == {}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    return build_world(tmp_path_factory.mktemp("modes"))


@pytest.mark.slow
def test_a_run_and_an_export_of_its_merged_child_leave_the_umasks_modes(world, tmp_path, capsys, umask):
    cfg = {**good(world, tmp_path), "budget": {"generations": 1, "population_size": 2}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["evolve", str(tmp_path / "run.yaml"), "--no-progress"]) == 0, capsys.readouterr().err
    state = load_state(tmp_path / "run")
    child = next(cid for cid, ind in state.individuals.items() if ind.genome is not None)
    code = main(["export", str(tmp_path / "run"), child, str(tmp_path / "exported")])  # weights through mergekit
    assert code == 0, capsys.readouterr().err
    assert any((tmp_path / "exported").glob("*.safetensors"))
    assert odd_modes(tmp_path / "run", umask=umask) == {}
    assert odd_modes(tmp_path / "exported", umask=umask) == {}
