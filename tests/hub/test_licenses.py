"""Licenses, `.eval_results` and `new_version`: what a published child's repo says about its rights,
its scores and its successor.

Derivation is tested as a table and each refusal on its own; reading licenses goes through the
real client (Hub cards) or a local README; publishing uses the simulated run of
tests/helpers/sim_runs.py, as tests/publish/test_hub.py does, with seeds whose cards carry licenses,
and reads everything back through the client.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi, ModelCard

from hubevo.evaluation.records import Evaluation
from hubevo.hub.licenses import (
    LicenseError,
    ParentLicense,
    derive,
    hub_license,
    lineage_licenses,
    local_license,
)
from hubevo.publish.hub import publish_generation
from tests.helpers.sim_runs import ALICE_TOKEN, new_run, tiny_weights

_names = itertools.count()


def parents(*licenses: str | None) -> list[ParentLicense]:
    return [ParentLicense(f"org/p{i}", lic) for i, lic in enumerate(licenses)]


# --------------------------------------------------------------------------- derivation


@pytest.mark.parametrize("licenses, child", [
    (("apache-2.0", "mit"), "apache-2.0"),
    (("mit", "bsd-3-clause"), "mit"),
    (("cc-by-nc-4.0", "apache-2.0"), "cc-by-nc-4.0"),
    (("mit", "cc-by-nc-4.0", "apache-2.0"), "cc-by-nc-4.0"),
    (("cc-by-nc-sa-4.0", "cc-by-nc-4.0"), "cc-by-nc-sa-4.0"),
    (("gpl-3.0", "apache-2.0"), "gpl-3.0"),
    (("llama3", "mit"), "llama3"),
    (("Apache-2.0", "apache-2.0"), "apache-2.0"),
])
def test_the_child_takes_the_most_restrictive_license(licenses, child):
    assert derive(parents(*licenses)).license == child


@pytest.mark.parametrize("licenses, message", [
    (("apache-2.0", "my-own-license"), r"unknown or missing license of parent\(s\) org/p1 \(my-own-license\)"),
    (("apache-2.0", None), r"org/p1 \(no license\)"),
    (("llama3", "gemma"), "conflicting licenses gemma and llama3"),
    (("gpl-3.0", "cc-by-nc-4.0"), "must stay non-commercial .cc-by-nc-4.0. but must also keep gpl-3.0"),
    (("llama3.1", "cc-by-nc-4.0"), "must also keep llama3.1"),
    (("apache-2.0", "cc-by-nd-4.0"), "cc-by-nd-4.0 forbids derivatives"),
])
def test_each_refusal_names_the_parents_and_their_licenses(licenses, message):
    with pytest.raises(LicenseError, match=message) as refused:
        derive(parents(*licenses))
    text = str(refused.value)
    assert all(f"org/p{i} ({lic or 'no license'})" in text for i, lic in enumerate(licenses))
    assert "publish.license" in text
    assert derive(parents(*licenses), override="other").license == "other"  # an override always wins


def test_lineage_licenses_follow_the_family_tree_and_carry_gated_ancestors():
    seeds = {"a": ParentLicense("org/a", "apache-2.0", gated=True), "b": ParentLicense("org/b", "mit"),
             "c": ParentLicense("org/c", "cc-by-nc-4.0")}
    derived = lineage_licenses({"ab": ["a", "b"], "abc": ["ab", "c"]}, seeds, names={"ab": "run-ab"})
    assert derived["ab"].license == "apache-2.0" and derived["ab"].gated == ("org/a",)
    assert derived["abc"].license == "cc-by-nc-4.0" and derived["abc"].gated == ("org/a",)
    with pytest.raises(LicenseError, match=r"org/c \(cc-by-nc-4.0\)"):
        lineage_licenses({"x": ["c", "g"]}, {**seeds, "g": ParentLicense("org/g", "gpl-3.0")}, names={})


# --------------------------------------------------------------------------- reading licenses


def test_licenses_are_read_from_hub_cards_and_local_readmes(hub_server, tmp_path):
    api = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)
    repo = f"alice/lic-{next(_names)}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"---\nlicense: other\nlicense_name: llama3\n---\n# m\n",
                    path_in_repo="README.md", repo_id=repo)
    assert hub_license(repo, api=api) == ParentLicense(repo, "llama3", gated=False)
    (tmp_path / "README.md").write_text("---\nlicense: MIT\n---\n# local\n")
    assert local_license(tmp_path) == ParentLicense(tmp_path.name, "mit")
    assert local_license(tmp_path / "nothing").license is None


# --------------------------------------------------------------------------- publishing


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    return tiny_weights(tmp_path_factory.mktemp("license-weights"))


@pytest.fixture(scope="module")
def licensed_seeds(hub_server, weights) -> dict[str, str]:
    api = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)
    repos = {}
    for name, lic in (("s1", "apache-2.0"), ("s2", "cc-by-nc-4.0")):
        repo = f"alice/licseed-{name}"
        api.create_repo(repo, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=weights[name])
        api.upload_file(path_or_fileobj=f"---\nlicense: {lic}\n---\n# {name}\n".encode(), path_in_repo="README.md",
                        repo_id=repo)
        repos[name] = repo
    return repos


def eval_results(api: HfApi, repo: str) -> dict[str, dict[str, float]]:
    """split -> task -> value, as the Hub lists a model's `.eval_results` (split told by the file and the notes)."""
    out: dict[str, dict[str, float]] = {}
    for entry in api.model_info(repo, expand=["evalResults"]).eval_results or []:
        split = entry.notes.split()[1]
        out.setdefault(split, {})[entry.task_id] = entry.value
    return out


def test_published_children_carry_license_eval_results_and_new_version(
    hub_server, weights, licensed_seeds, tmp_path
):
    api = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)
    run = new_run(tmp_path, weights, licensed_seeds)
    s1, s2, c1, c2 = run.seeds["s1"], run.seeds["s2"], run.children["c1"], run.children["c2"]
    publish = lambda: publish_generation(run_dir=run.run_dir, state=run.state, cfg=run.cfg, api=api,  # noqa: E731
                                         licenses=True)
    run.evaluate(s1, 0.3, 0), run.evaluate(s2, 0.5, 0), run.survive(0, ["s2", "s1"])
    run.evaluate(c1, 0.6, 1)
    run.state.heldout[c1.id] = {"tiny_heldout": 0.25}
    run.state.validation[c1.id] = Evaluation(id=c1.id, generation=1, status="ok", fitness=0.58,
                                             scores={"tiny": 0.58}, examples=8)
    run.survive(1, ["c1", "s2"])
    publish()

    c1_repo = run.repo("c1")
    card = ModelCard.load(c1_repo, token=ALICE_TOKEN)
    assert card.data.license == "cc-by-nc-4.0" and card.data.get("new_version") is None  # apache-2.0 + cc-by-nc-4.0
    assert eval_results(api, c1_repo) == {"fitness": {"tiny": 0.6}, "validation": {"tiny": 0.58},
                                          "heldout": {"tiny_heldout": 0.25}}
    raw = yaml.safe_load(hub_server.get_file(c1_repo, ".eval_results/heldout.yaml"))
    assert raw[0]["dataset"] == {"id": run.cfg.publish.results_repo(run.cfg.name), "task_id": "tiny_heldout"}
    champion = run.cfg.publish.champion_repo(run.cfg.name)
    assert eval_results(api, champion)["fitness"] == {"tiny": 0.6}
    assert ModelCard.load(champion, token=ALICE_TOKEN).data.license == "cc-by-nc-4.0"

    run.evaluate(c2, 0.7, 2)  # c2 (child of c1 and s2) replaces c1, which does not survive generation 2
    run.state.validation[c2.id] = Evaluation(id=c2.id, generation=2, status="ok", fitness=0.66,
                                             scores={"tiny": 0.66}, examples=8)
    run.survive(2, ["c2", "s2"])
    publish()
    card = ModelCard.load(c1_repo, token=ALICE_TOKEN)
    assert card.data.get("new_version") == run.repo("c2") and card.data.license == "cc-by-nc-4.0"
    assert [c.title for c in api.list_repo_commits(c1_repo)][0] == f"superseded by {run.repo('c2')}"
    assert ModelCard.load(run.repo("c2"), token=ALICE_TOKEN).data.get("new_version") is None
    commits = hub_server.commit_count(c1_repo)
    publish()
    assert hub_server.commit_count(c1_repo) == commits  # linked once


def test_conflicting_seed_licenses_stop_publishing_unless_overridden(hub_server, weights, tmp_path):
    api = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)
    repos = {}
    for name, lic in (("s1", "gpl-3.0"), ("s2", "cc-by-nc-4.0")):
        repos[name] = repo = f"alice/conflict-{name}-{next(_names)}"
        api.create_repo(repo)
        api.upload_folder(repo_id=repo, folder_path=weights[name])
        api.upload_file(path_or_fileobj=f"---\nlicense: {lic}\n---\n".encode(), path_in_repo="README.md", repo_id=repo)
    run = new_run(tmp_path, weights, repos)
    run.evaluate(run.seeds["s1"], 0.3, 0), run.evaluate(run.seeds["s2"], 0.5, 0), run.survive(0, ["s2", "s1"])
    run.evaluate(run.children["c1"], 0.6, 1), run.survive(1, ["c1", "s2"])
    with pytest.raises(LicenseError, match=rf"{repos['s1']} \(gpl-3.0\).*{repos['s2']} \(cc-by-nc-4.0\)"):
        publish_generation(run_dir=run.run_dir, state=run.state, cfg=run.cfg, api=api, licenses=True)
    assert not api.repo_exists(run.repo("c1"))
    publish_generation(run_dir=run.run_dir, state=run.state, cfg=run.cfg, api=api, licenses=True,
                       license_override="cc-by-nc-sa-4.0")
    assert ModelCard.load(run.repo("c1"), token=ALICE_TOKEN).data.license == "cc-by-nc-sa-4.0"


def test_seed_license_read_from_a_local_folder(tmp_path):
    folder = tmp_path / "local-seed"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    assert derive([local_license(folder), ParentLicense("org/x", "mit")]).license == "apache-2.0"
    assert Path(folder).is_dir()
