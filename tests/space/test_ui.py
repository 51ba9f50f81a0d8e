"""The Space end to end in a browser: headless Chromium (Debian's `chromium`) driven by Playwright
against the app on 127.0.0.1, over a finished run made by the real loop.

A tiny zoo evolves for one generation on a local multiple-choice lm-eval task; the app
serves that run directory. The browser sees the leaderboard rows, a family tree picture,
the progress chart and a model's card and recipe; seeding is refused signed out and with a
wrong token (in the page and through Gradio's API alike) and accepted with the admin token,
after which the new run shows in the Status tab. A screenshot of every tab is saved under
`artifacts/screenshots/`.

Two runs with finals (a bred champion, a member kept: tests/helpers/space_runs.py) are served on
their own, at desktop and phone size: the champion's recorded reason and its error read the same
on the leaderboard, in the summary and on the model page as in `champion.json`, the page is never
wider than the screen, and browsing them writes nothing into their folders. Their leaderboard, a
model page, the Pareto plot and a family tree are saved under /tmp/space-shots/.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path

import pytest
import torch
import yaml

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from huggingface_hub import HfApi  # noqa: E402

from hubevo.config import RunConfig, parse_config  # noqa: E402
from hubevo.publish.hub import push_results  # noqa: E402
from hubevo.run.loop import evolve  # noqa: E402
from hubevo.state.runstate import load_state  # noqa: E402
from space.pages.leaderboard import BADGE  # noqa: E402
from tests.helpers import wait_until  # noqa: E402
from tests.helpers.sim_runs import write_run  # noqa: E402
from tests.helpers.space_runs import write_finals_run  # noqa: E402
from tests.tiny_models import build_zoo, write_choice_task  # noqa: E402

torch.set_num_threads(1)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
SHOTS = Path("/tmp/space-shots")  # desktop and phone pictures of the pages that tell the champion story
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
ADMIN_TOKEN = "space-admin-token"
TASK = "space_add_mc"
HELDOUT = "space_add_mc_heldout"
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=(
        f"{CHROMIUM} is missing: the browser test needs Debian's chromium (apt-get install -y chromium)")),
    pytest.mark.browser,
    pytest.mark.slow,  # a run evolves first
]


class FakeController:
    """An in-memory stand-in for the scheduler: records submissions and reports them as queued."""

    def __init__(self):
        self.submitted: list[tuple[dict, str]] = []
        self.calls: list[tuple[str, str]] = []

    def submit(self, run_config: dict, *, user: str) -> str:
        self.submitted.append((run_config, user))
        return run_config["name"]

    def status(self) -> list[dict]:
        return [{"name": cfg["name"], "state": "queued", "generation": 0, "generations": cfg["budget"]["generations"],
                 "candidate": 0, "candidates": cfg["budget"]["population_size"], "elapsed_s": 0.0, "eta_s": None,
                 "best_fitness": None, "message": f"queued by {user}"} for cfg, user in self.submitted]

    def pause(self, name: str) -> None:
        self.calls.append(("pause", name))

    def resume(self, name: str) -> None:
        self.calls.append(("resume", name))

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))


def write_task(folder: Path) -> Path:
    write_choice_task(folder, HELDOUT)
    return write_choice_task(folder, TASK)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> dict:
    """A finished one-generation run under `runs/` (about 15 s on CPU)."""
    root = tmp_path_factory.mktemp("space-ui")
    zoo = build_zoo(root / "zoo", finetunes=2)
    tasks = write_task(root / "tasks")
    cfg = parse_config({
        "name": "demo-run",
        "population": {"members": [str(zoo["ft1"]), str(zoo["ft2"])], "base_model": str(zoo["base"])},
        "fitness": {"tasks": [{"name": TASK, "metric": "acc"}], "heldout": [{"name": HELDOUT, "metric": "acc"}],
                    "include_path": [str(tasks)], "limit": 8},
        "crossover": {"methods": ["linear", "ties", "slerp"]},
        "budget": {"generations": 1, "population_size": 3},
        "search": {"strategy": "ga", "baselines": []},
        "selection": {"keep_top_k": 0},  # generation 1 is all children, so a bred child survives
        "output": {"dir": str(root / "runs" / "demo-run")},
    }, root=root)
    state = evolve(cfg, progress=False)
    assert state.finished
    return {"runs_root": root / "runs", "tasks": tasks, "state": state}


@pytest.fixture(scope="module")
def hub_results(hub_server, tmp_path_factory) -> tuple[HfApi, str]:
    """A results dataset of another run (`sim`, survivors pushed) on the test Hub."""
    api = HfApi(endpoint=hub_server.url, token="token-alice")
    cfg = write_run(tmp_path_factory.mktemp("space-ui-hub"), name="sim")
    state = load_state(cfg.output.dir)
    return api, push_results(api, run_dir=cfg.output.dir, state=state, cfg=cfg)


@pytest.fixture(scope="module")
def served(demo_run, hub_results):
    from space.controls.ui import build_app, serve

    api, results_repo = hub_results
    controller = FakeController()
    demo = build_app(runs_root=demo_run["runs_root"], controller=controller, admin_token=ADMIN_TOKEN,
                     allow_list=["alice"], task_dirs=[demo_run["tasks"]], hub_datasets=[results_repo], api=api)
    with pytest.MonkeyPatch.context() as env:
        env.delenv("GRADIO_SERVER_NAME", raising=False)
        serve(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    assert demo.server_name == "127.0.0.1"  # nothing beyond this machine unless told otherwise
    yield {"url": demo.local_url, "controller": controller}
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(served["url"])
    page.locator("#leaderboard [role=gridcell]").first.wait_for()
    yield page
    context.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def shoot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    time.sleep(0.5)  # let images and fonts settle
    page.screenshot(path=str(path), full_page=True)
    return path


def choose(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.locator(dropdown).get_by_role("option", name=option, exact=True).click()


def grid_texts(page, selector: str) -> list[str]:
    """The cells' texts, the champion's badge left out."""
    return [text.strip().removeprefix(f"{BADGE} ") for text in
            page.locator(f"{selector} [role=gridcell]").all_inner_texts()]


def headers(page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(f"{selector} [role=columnheader]").all_inner_texts()]


def exactly(text: str) -> re.Pattern:
    """A pattern for a cell holding `text` and nothing else (a cell's text is padded with blanks). Playwright runs
    it as a JavaScript regex, where Python's escapes of `-` and spaces are errors: only the characters special to
    both are escaped."""
    return re.compile(r"^\s*" + re.sub(r"([.*+?^${}()|\[\]\\/])", r"\\\1", text) + r"\s*$")


def fill_seed_form(page, *, name: str) -> None:
    open_tab(page, "Seed")
    page.locator("#seed-name textarea, #seed-name input").first.fill(name)
    page.locator("#seed-candidates textarea").fill("alice/tiny-a\nalice/tiny-b@main")
    page.locator("#seed-base textarea, #seed-base input").first.fill("alice/tiny-base")
    page.locator("#seed-heldout textarea, #seed-heldout input").first.fill(HELDOUT)


def seed_result(page, *, containing: str) -> str:
    result = page.locator("#seed-result")
    result.get_by_text(containing).wait_for()
    return result.inner_text()


# --------------------------------------------------------------------------- reading is public
def test_leaderboard_shows_every_candidate_best_first_linked_to_its_repo(page, demo_run, hub_results):
    state = demo_run["state"]
    cells = grid_texts(page, "#leaderboard")
    names = {ind.name for i, ind in state.individuals.items() if i in state.evaluations}
    assert names <= set(cells)
    best = state.individuals[state.champion()].name  # the core's one rule
    assert cells.index(best) < min(cells.index(n) for n in names - {best})
    api, _repo = hub_results  # the run read from its results dataset: every pushed model is a link
    assert "sim" in cells
    link = page.locator("#leaderboard a", has_text="alice/s2").first
    assert link.get_attribute("href") == f"{api.endpoint}/alice/s2"
    hrefs = {a.get_attribute("href") for a in page.locator("#leaderboard a").all()}
    assert len({h for h in hrefs if h.startswith(f"{api.endpoint}/alice/sim-")}) == 2  # c1 and c2, pushed
    shoot(page, "1-leaderboard")


def test_leaderboard_filters_by_run_and_generation(page, demo_run):
    from playwright.sync_api import expect

    cell = lambda text: page.locator("#leaderboard [role=gridcell]").filter(  # noqa: E731
        has_text=re.compile(f"^{re.escape(text)}$"))
    choose(page, "#leaderboard-run", "demo-run")
    expect(cell("sim")).to_have_count(0)
    choose(page, "#leaderboard-generation", "1")
    expect(cell("ft1")).to_have_count(0)
    bred = [ind.name for ind in demo_run["state"].individuals.values() if ind.generation == 1]
    assert set(grid_texts(page, "#leaderboard")) >= set(bred)


def test_a_clicked_row_shows_its_family_tree_and_its_card(page, demo_run):
    from playwright.sync_api import expect

    state = demo_run["state"]
    bred = [i for i, ind in state.individuals.items() if ind.kind == "merge" and i in state.saved]
    child = state.individuals[bred[0]]
    page.locator("#leaderboard [role=gridcell]", has_text=exactly(child.name)).first.click()
    open_tab(page, "Family tree")
    image = page.locator("#tree-image img")
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 400", arg=image.element_handle())
    assert child.name in page.locator("#tree-model").inner_text() or child.name in page.locator(
        "#tree-model input").input_value()
    expect(page.locator("#tree-page-note")).to_contain_text("page 1 of 1 (newest first): generations 0–1")
    expect(page.locator("#tree-page")).to_be_hidden()  # one page: nothing to choose
    shoot(page, "2-family-tree")
    open_tab(page, "Model")
    page.locator("#model-summary").get_by_text(child.name).first.wait_for()
    page.locator("#model-card").get_by_text("Lineage").first.wait_for()
    assert f"merge_method: {child.genome.method}" in page.locator("#model-recipe").inner_text()
    shoot(page, "4-model")


def test_progress_tab_plots_fitness_and_held_out_per_generation(page):
    open_tab(page, "Progress")
    page.locator("#progress-plot img").wait_for()
    assert grid_texts(page, "#progress-table")[:2] == ["0", "2"]  # generation 0: the two seeds
    shoot(page, "3-progress")


# --------------------------------------------------------------------------- acting needs an identity
def test_seeding_is_refused_signed_out_and_accepted_with_the_admin_token(page, served, demo_run):
    controller = served["controller"]
    fill_seed_form(page, name="seeded-run")
    page.locator("#seed-submit").click()
    assert "sign in" in seed_result(page, containing="Refused")
    shoot(page, "5-seed-refused-signed-out")
    page.locator("#admin-token input").fill("not-the-token")
    page.locator("#seed-submit").click()
    assert "admin token is wrong" in seed_result(page, containing="wrong")
    assert controller.submitted == []

    page.locator("#admin-token input").fill(ADMIN_TOKEN)
    page.locator("#seed-submit").click()
    assert "seeded-run" in seed_result(page, containing="Queued")
    shoot(page, "5-seed-accepted")
    config, user = controller.submitted[-1]
    assert user == "admin"
    cfg = RunConfig.model_validate(config)
    assert [m.repo for m in cfg.population.members] == ["alice/tiny-a", "alice/tiny-b@main"]
    assert cfg.fitness.tasks[0].name == TASK and cfg.fitness.include_path == [demo_run["tasks"].resolve()]
    assert cfg.output.dir == demo_run["runs_root"].resolve() / "seeded-run"

    open_tab(page, "Status")
    row = page.locator("#status-table [role=gridcell]", has_text="seeded-run")
    row.first.wait_for()
    cells = grid_texts(page, "#status-table")
    assert cells[cells.index("seeded-run") + 1] == "queued"
    assert "demo-run" in cells and "finished" in cells
    page.locator("#status-run input, #status-run textarea").first.fill("seeded-run")
    page.get_by_role("button", name="Pause").click()
    page.locator("#status-message").get_by_text("pause: seeded-run").wait_for()
    assert controller.calls == [("pause", "seeded-run")]
    shoot(page, "6-status")


def test_an_invalid_form_is_refused_with_its_problems_even_with_the_token(page, served):
    before = len(served["controller"].submitted)
    fill_seed_form(page, name="bad-run")
    page.locator("#seed-candidates textarea").fill("/etc/passwd")
    page.locator("#admin-token input").fill(ADMIN_TOKEN)
    page.locator("#seed-submit").click()
    text = seed_result(page, containing="Refused")
    assert "'/etc/passwd' is a local path" in text and "HUBEVO_SPACE_LOCAL_ROOT" in text  # what an admin can do
    assert len(served["controller"].submitted) == before


def test_a_number_field_sent_as_text_is_refused_naming_the_field(served):
    from gradio_client import Client

    client = Client(served["url"], verbose=False)
    before = len(served["controller"].submitted)
    form = ["", "none", True, "alice/a\nalice/b", "alice/base", "", "", "", 8, ["linear"], TASK, "", 8, "three", 2,
            10, "soon"]
    result, _status = client.predict(ADMIN_TOKEN, "api-text-numbers", *form, api_name="/queue_run")
    assert "Refused" in result and "Generations 'three' is not a number" in result
    assert "Wall time, hours 'soon' is not a number" in result
    assert len(served["controller"].submitted) == before


def test_an_uploaded_run_yaml_is_queued_or_refused_naming_the_field(served, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(served["url"], verbose=False)
    spec = {"name": "yaml-run", "population": {"members": ["alice/a", "alice/b"]}, "fitness": {"tasks": [TASK]},
            "crossover": {"methods": ["linear"]}, "budget": {"generations": 1, "population_size": 2}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec | {"budget": {"generations": -1}}))
    result, _status = client.predict(ADMIN_TOKEN, handle_file(str(tmp_path / "bad.yaml")), api_name="/queue_run_yaml")
    assert "Refused" in result and "budget.generations" in result
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(spec))
    result, _status = client.predict(ADMIN_TOKEN, handle_file(str(tmp_path / "run.yaml")), api_name="/queue_run_yaml")
    assert "Queued" in result and served["controller"].submitted[-1][0]["name"] == "yaml-run"


def test_the_api_cannot_start_or_stop_runs_without_an_identity(served):
    from gradio_client import Client

    client = Client(served["url"], verbose=False)
    controller = served["controller"]
    before, calls = len(controller.submitted), len(controller.calls)
    form = ["", "none", True, "alice/a\nalice/b", "alice/base", "", "", "", 8, ["linear"], TASK, "", 8, 1, 2, 10, 1]
    for token in ("", "guess"):
        result, _status = client.predict(token, "api-run", *form, api_name="/queue_run")
        assert "Refused" in result
    assert len(controller.submitted) == before
    result, _status = client.predict(ADMIN_TOKEN, "api-run", *form, api_name="/queue_run")
    assert "Queued" in result and controller.submitted[-1][0]["name"] == "api-run"

    for verb in ("pause", "resume", "stop"):
        message, _ = client.predict("", "api-run", api_name=f"/{verb}")
        assert "Refused" in message and "sign in" in message
    assert len(controller.calls) == calls
    message, _ = client.predict(ADMIN_TOKEN, "demo-run", api_name="/stop")  # on disk, but no scheduler's run
    assert "unknown run 'demo-run'" in message and "Known runs managed here: " in message and "api-run" in message
    assert len(controller.calls) == calls
    client.predict(ADMIN_TOKEN, "api-run", api_name="/pause")
    client.predict(ADMIN_TOKEN, "api-run", api_name="/stop")
    assert controller.calls[calls:] == [("pause", "api-run"), ("stop", "api-run")]


# --------------------------------------------------------------------------- one champion, a leaderboard people know
def test_one_champion_is_badged_summarised_and_opened_by_every_tab(page, demo_run):
    from playwright.sync_api import expect

    state = demo_run["state"]
    name = state.individuals[state.champion()].name
    badged = [c for c in page.locator("#leaderboard [role=gridcell]").all_inner_texts() if BADGE in c]
    assert len(badged) == 2  # one per run: the run on disk and the one read from the Hub
    summary = page.locator("#champion-summary").inner_text()
    reason = json.loads((demo_run["runs_root"] / "demo-run" / "champion.json").read_text())["text"]
    assert f"{name} is the champion of run demo-run" in summary and f"why: {reason}" in summary  # the run's words
    assert "is the champion of run sim" in summary
    choose(page, "#leaderboard-run", "demo-run")
    first = page.locator("#leaderboard [role=gridcell]").first
    first.get_by_text(f"{BADGE} {name}").wait_for()  # the run's first row, badged
    expect(page.locator("#champion-summary")).not_to_contain_text("run sim")
    shoot(page, "1-leaderboard-champion")
    open_tab(page, "Family tree")
    tree_model = page.locator("#tree-model input").input_value()
    if state.individuals[state.champion()].kind == "seed":  # a seed's tree is one box: the best bred lineage
        assert any(ind.name in tree_model for ind in state.individuals.values() if ind.kind != "seed")
    else:
        assert name in tree_model
    open_tab(page, "Model")
    assert name in page.locator("#model-picker input").input_value()
    page.locator("#model-summary").get_by_text(name).first.wait_for()


def test_per_task_columns_and_the_column_chooser(page):
    from playwright.sync_api import expect

    assert {f"fitness/{TASK}", f"heldout/{HELDOUT}"} <= set(headers(page, "#leaderboard"))
    page.get_by_text("Columns", exact=True).click()
    page.locator("#leaderboard-columns").get_by_label("parents", exact=True).uncheck()
    page.locator("#leaderboard-columns").get_by_label(f"heldout/{HELDOUT}", exact=True).uncheck()
    expect(page.locator("#leaderboard [role=columnheader]", has_text=f"heldout/{HELDOUT}")).to_have_count(0)
    shown = headers(page, "#leaderboard")
    assert shown[0] == "model" and "parents" not in shown and f"fitness/{TASK}" in shown
    shoot(page, "7-leaderboard-columns")


def test_live_search_and_sorting_by_a_score(page, demo_run):
    from playwright.sync_api import expect

    search = page.locator("#leaderboard-search input, #leaderboard-search textarea").first
    search.press_sequentially("ft1")  # no Enter: the rows follow the typing
    expect(page.locator("#leaderboard [role=row]")).to_have_count(2)  # the header and ft1
    assert grid_texts(page, "#leaderboard")[0] == "ft1"
    for _ in "ft1":
        search.press("Backspace")
    expect(page.locator("#leaderboard [role=row]")).not_to_have_count(2)
    choose(page, "#leaderboard-sort", "fitness")
    expect(page.locator("#leaderboard [role=gridcell]").first).not_to_have_text(re.compile("^$"))
    scores = column_values(page, "#leaderboard", "fitness", until=lambda v: v == sorted(v, reverse=True))
    assert scores == sorted(scores, reverse=True) and len(scores) >= 4


def column_values(page, grid: str, name: str, *, until, timeout_s: float = 15.0) -> list[float]:
    """A grid column's scores, read again while the grid re-renders until `until` holds or time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = headers(page, grid)
        cells = grid_texts(page, grid)
        values = [float(v.split(" ± ")[0]) for v in cells[shown.index(name)::len(shown)] if v not in ("-", "")]
        if until(values) or time.monotonic() > deadline:
            return values
        page.wait_for_timeout(200)


def test_the_shown_rows_download_as_csv_and_parquet(page, tmp_path):
    import pandas as pd

    rows = len(page.locator("#leaderboard [role=row]").all()) - 1
    frames = {}
    for kind, read in (("csv", pd.read_csv), ("parquet", pd.read_parquet)):
        with page.expect_download(timeout=120_000) as download:  # a loaded machine renders slowly
            page.locator(f"#download-{kind}").click()
        path = tmp_path / f"board.{kind}"
        download.value.save_as(path)
        frames[kind] = read(path)
    for frame in frames.values():
        assert len(frame) == rows and frame.columns[:2].tolist() == ["model", "champion"]
        assert frame["champion"].astype(str).str.lower().eq("true").sum() == 2
        assert not frame["model"].astype(str).str.contains(r"\]\(").any()  # plain names, no markdown
    assert frames["csv"]["model"].tolist() == frames["parquet"]["model"].tolist()


def test_two_models_compare_side_by_side_with_a_recipe_diff(page, demo_run):
    state = demo_run["state"]
    bred = [ind for i, ind in state.individuals.items() if ind.kind == "merge" and i in state.evaluations]
    page.get_by_text("Compare two models", exact=True).click()
    choose(page, "#compare-a", f"demo-run · {bred[0].name}")
    choose(page, "#compare-b", f"demo-run · {bred[1].name}")
    page.locator("#compare-scores").get_by_text(bred[1].name).first.wait_for()
    cells = grid_texts(page, "#compare-scores")
    assert {"fitness", f"fitness/{TASK}", "A − B"} <= set(cells) | set(headers(page, "#compare-scores"))
    diff = page.locator("#compare-diff").inner_text()
    assert f"demo-run/{bred[0].name}" in diff and f"demo-run/{bred[1].name}" in diff
    assert "merge_method" in diff
    shoot(page, "8-compare")


# --------------------------------------------------------------------------- seeding switched off
@pytest.fixture(scope="module")
def read_only(demo_run):
    """The same runs served with no scheduler and nobody allowed to act."""
    from space.controls.ui import build_app, serve

    demo = build_app(runs_root=demo_run["runs_root"], controller=None, admin_token=None, allow_list=[])
    serve(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


def test_with_seeding_off_the_form_is_hidden_and_the_reason_shown(browser, read_only):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(read_only)
    page.locator("#leaderboard [role=gridcell]").first.wait_for(timeout=TIMEOUT_MS)
    open_tab(page, "Seed")
    page.locator("#seed-intro").get_by_text("Seeding is switched off").wait_for(timeout=TIMEOUT_MS)
    assert not page.locator("#seed-form").is_visible() and not page.locator("#seed-submit").is_visible()
    assert not page.locator("#admin-token").is_visible()
    shoot(page, "9-seed-switched-off")
    context.close()


# --------------------------------------------------------------------------- phone width
def test_at_phone_width_every_tab_is_reachable_and_the_title_is_one_line(browser, served):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(served["url"])
    page.locator("#leaderboard [role=gridcell]").first.wait_for()
    title = page.locator("#title h1")
    line = float(title.evaluate("h => parseFloat(getComputedStyle(h).lineHeight) || h.offsetHeight"))
    assert title.bounding_box()["height"] <= line * 1.2, "the title wraps"
    tabs = ["Leaderboard", "Family tree", "Progress", "Model", "Seed", "Status"]
    shoot(page, "10-phone-leaderboard")
    for i, name in enumerate(tabs):
        tab = page.get_by_role("tab", name=name)
        assert tab.is_visible(), f"tab {name} is folded away at phone width"
        box = tab.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
        tab.click()
        assert tab.get_attribute("aria-selected") == "true"
        if i:
            shoot(page, f"10-phone-{name.lower().replace(' ', '-')}")
    context.close()


# --------------------------------------------------------------------------- the champion story, desktop and phone
@pytest.fixture(scope="module")
def finals_runs(tmp_path_factory) -> dict:
    """Two finished runs with finals (a bred champion, a member kept), hashed before any Space was started."""
    root = tmp_path_factory.mktemp("space-finals") / "runs"
    for kind in ("bred", "seed"):
        write_finals_run(root, name=f"fin-{kind}", champion=kind)
    return {"root": root, "before": folder_hashes(root)}


@pytest.fixture(scope="module")
def finals_served(finals_runs):
    from space.controls.ui import build_app, serve

    demo = build_app(runs_root=finals_runs["root"], controller=FakeController(), admin_token=ADMIN_TOKEN,
                     allow_list=["alice"])
    serve(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


def folder_hashes(root: Path) -> dict[str, str]:
    """Every file under `root` (path -> sha256 of its bytes)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def open_page(browser, url: str, viewport: str):
    phone = viewport == "phone"
    context = browser.new_context(viewport=VIEWPORTS[viewport], is_mobile=phone, has_touch=phone)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.locator("#leaderboard [role=gridcell]").first.wait_for()
    return context, page


def snap(page, name: str, *, element: str | None = None) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    time.sleep(0.5)  # let images and fonts settle
    (page.locator(element) if element else page).screenshot(path=str(path), **({} if element else {"full_page": True}))
    return path


def page_width(page) -> int:
    return page.evaluate("document.scrollingElement.scrollWidth")


def choose_picture(page, dropdown: str, option: str, *, picture: str) -> None:
    """Choose `option` and wait until the image in `picture` is the one drawn for it, and loaded."""
    image = page.locator(f"{picture} img")
    image.first.wait_for()
    old = None if page.locator(f"{dropdown} input").input_value() == option else image.get_attribute("src")
    choose(page, dropdown, option)
    page.wait_for_function("([box, old]) => { const img = document.querySelector(box + ' img'); "
                           "return img && img.getAttribute('src') !== old && img.complete && img.naturalWidth > 0; }",
                           arg=[picture, old])


def header_box(page, grid: str, name: str) -> dict:
    return page.locator(f"{grid} [role=columnheader]").nth(headers(page, grid).index(name)).bounding_box()


def row_cells(page, grid: str, row: str) -> dict[str, str]:
    """The cells of the grid row holding a cell with exactly `row`, by column header."""
    cell = page.locator(f"{grid} [role=gridcell]", has_text=exactly(row)).first
    index = cell.get_attribute("data-row")
    names = headers(page, grid)
    texts = page.locator(f"{grid} [role=gridcell][data-row='{index}']").all_inner_texts()
    return dict(zip(names, (t.strip() for t in texts), strict=True))


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_the_champions_reason_and_its_error_read_as_recorded_on_every_page(browser, finals_runs, finals_served,
                                                                         viewport):
    from playwright.sync_api import expect

    context, page = open_page(browser, finals_served, viewport)
    for kind in ("bred", "seed"):
        run = f"fin-{kind}"
        decision = json.loads((finals_runs["root"] / run / "champion.json").read_text())
        text, name = decision["text"], decision["champion_name"]
        assert "±" in text  # its lead's error
        choose(page, "#leaderboard-run", run)
        expect(page.locator("#champion-summary")).to_contain_text(f"why: {text}")
        why = page.locator("#leaderboard [role=gridcell]", has_text=exactly(text))
        expect(why).to_have_count(1)  # the champion's row carries the run's sentence, as recorded
        row = row_cells(page, "#leaderboard", text)
        assert row["model"] == f"{BADGE} {name}" and re.fullmatch(r"0\.\d{3} ± 0\.020", row["validation"])
        assert re.fullmatch(r"0\.\d{3} ± 0\.020", row["fitness"])
        assert page_width(page) <= VIEWPORTS[viewport]["width"]  # the page never scrolls sideways
        fitness = header_box(page, "#leaderboard", "fitness")
        assert fitness["x"] >= 0 and fitness["x"] + fitness["width"] <= VIEWPORTS[viewport]["width"]
        snap(page, f"{viewport}-{run}-leaderboard")

        open_tab(page, "Model")
        choose(page, "#model-picker", f"{run} · {name}")
        expect(page.locator("#model-verdict")).to_contain_text(text)
        expect(page.locator("#model-summary")).to_contain_text("± 0.020")
        assert page_width(page) <= VIEWPORTS[viewport]["width"]
        snap(page, f"{viewport}-{run}-model")
        loser = decision["challenger_name"] if kind == "seed" else decision["holder_name"]
        choose(page, "#model-picker", f"{run} · {loser}")
        expect(page.locator("#model-verdict")).to_contain_text(f"not champion: {text}")
        choose(page, "#model-picker", f"{run} · alice/s1")
        expect(page.locator("#model-verdict")).to_contain_text("not a finalist: the champion rule compares only")

        open_tab(page, "Progress")
        choose_picture(page, "#progress-run", run, picture="#pareto-plot")
        assert page_width(page) <= VIEWPORTS[viewport]["width"]
        snap(page, f"{viewport}-{run}-pareto", element="#pareto-plot")

        open_tab(page, "Family tree")
        lineage = name if kind == "bred" else decision["challenger_name"]  # a member's tree: the best bred one's
        choose_picture(page, "#tree-model", f"{run} · {lineage}", picture="#tree-image")
        expect(page.locator("#tree-page-note")).to_contain_text("page 1 of 1 (newest first): generation")
        assert page_width(page) <= VIEWPORTS[viewport]["width"]
        snap(page, f"{viewport}-{run}-family-tree")
        open_tab(page, "Leaderboard")
    context.close()


def test_at_phone_width_the_model_and_its_fitness_stay_in_view_as_the_table_scrolls(browser, finals_served):
    context, page = open_page(browser, finals_served, "phone")
    page.locator("#leaderboard .virtual-table-viewport").evaluate("box => { box.scrollLeft = box.scrollWidth; }")
    page.wait_for_timeout(300)
    for name in ("model", "fitness"):
        box = header_box(page, "#leaderboard", name)
        assert 0 <= box["x"] and box["x"] + box["width"] <= 390, name
    assert page.locator("#leaderboard-survivors").bounding_box()["x"] + 24 <= 390  # no control cut off
    assert page_width(page) <= 390
    context.close()


def test_run_controls_show_only_to_whoever_may_use_them_and_empty_tables_say_so(browser, finals_served):
    from playwright.sync_api import expect

    context, page = open_page(browser, finals_served, "desktop")
    open_tab(page, "Status")
    page.locator("#status-table [role=gridcell]", has_text="fin-bred").first.wait_for()
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()  # anonymous: no controls
    expect(page.locator("#status-jobs-empty")).to_contain_text("No Hugging Face Jobs have been launched")
    expect(page.locator("#status-empty")).to_be_hidden()  # the runs table has rows
    row = row_cells(page, "#status-table", "fin-bred")
    assert row["best fitness"] == "0.600" and row["time left"] == "-" and row["evaluated this generation"] == "-"
    page.locator("#admin-token input").fill("not-the-token")
    page.wait_for_timeout(500)
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    page.locator("#admin-token input").fill(ADMIN_TOKEN)
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    context.close()


def test_browsing_leaves_every_run_folder_byte_identical(browser, finals_runs, finals_served):
    """Starting the Space over a folder of runs and loading its pages writes nothing into them."""
    context, page = open_page(browser, finals_served, "desktop")
    for tab in ("Family tree", "Progress", "Model", "Seed", "Status", "Leaderboard"):
        open_tab(page, tab)
        page.wait_for_timeout(300)
    page.reload()
    page.locator("#leaderboard [role=gridcell]").first.wait_for()
    context.close()
    assert folder_hashes(finals_runs["root"]) == finals_runs["before"]


def test_hubevo_space_leaves_a_finished_run_it_was_not_handed_as_it_was(tmp_path):
    from hubevo.run.scheduler import Scheduler
    from space.controls.ui import build_app, everything
    from space.data.catalog import Catalog

    cfg = write_finals_run(tmp_path / "runs", name="kept")
    (cfg.output.dir / "run.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    before = folder_hashes(cfg.output.dir)
    (tmp_path / "downloads").mkdir()
    sched = Scheduler(tmp_path / "runs").start()  # as cmd_space does, then the UI over the same folder
    try:
        build_app(runs_root=tmp_path / "runs", controller=sched, admin_token=None, allow_list=[])
        everything(Catalog(runs_root=tmp_path / "runs", hub_datasets=()), hub_url="http://127.0.0.1",
                   controller=sched, downloads=tmp_path / "downloads")
        try:
            wait_until(lambda: folder_hashes(cfg.output.dir) != before, timeout=5, what="a write")
        except AssertionError:
            pass  # nothing was written
    finally:
        sched.shutdown()
    assert folder_hashes(cfg.output.dir) == before
