"""The Gradio Space: tabs Leaderboard, Family tree, Progress, Model, Seed and Status.

`build_app` wires the tabs' views (`space.pages`: leaderboard, compare, tree, progress, front, detail,
status_table), over the runs `space.data.catalog` keeps, to the controls: `space.controls.seeding`
(form -> run config) and `space.controls.auth` (who may act) to a scheduler `Controller`, and
`space.controls.jobs` (a seeded run launched as a Hugging Face Job under the signed-in user's account).
Why a model is or is not the champion is the run's recorded decision everywhere (`space.data.verdict`);
scores are written one way (`space.data.numbers`). Reading is public and only reads; seeding, pausing,
resuming and stopping are checked on the server in each handler, and the run controls are shown only to
whoever may use them. The seeding form's fields reach its handlers by name (Gradio's `inputs_kwargs`,
in the order of the public API's parameters), and so do the leaderboard's filters. `serve` binds
127.0.0.1 unless a host is given (a Space sets `GRADIO_SERVER_NAME=0.0.0.0`), with the styles that keep
the title on one line, every tab in reach and the page no wider than a phone (tables scroll inside their
box, the model and its scores stay in view). The seeding form is hidden, with the reason shown, where
nobody may seed.
"""

import atexit
import io
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import gradio as gr
import pandas as pd
from PIL import Image

from hubevo.errors import HubevoError, UnknownNameError
from hubevo.hub.jobs import job_url
from hubevo.registry import unknown_name
from space.controls.auth import Access, AccessDenied, job_token
from space.controls.jobs import DEFAULT_TIMEOUT, FLAVORS, JOB_COLUMNS, JobLauncher, LaunchedJob, job_rows, launch_job
from space.controls.seeding import (
    PUSH_MODES,
    BudgetCaps,
    SeedError,
    SeedForm,
    TaskCatalog,
    build_run_config,
    config_from_yaml,
    local_task_names,
    seed_form,
)
from space.data.catalog import Catalog
from space.data.numbers import score_text, styled, with_error
from space.data.ranking import champion_id
from space.data.status import merge_statuses
from space.data.verdict import markdown_text
from space.pages.compare import champion_summary, recipe_diff, side_by_side
from space.pages.detail import ModelDetail, card_prose, card_sections, model_detail, use_it
from space.pages.front import front_figure
from space.pages.leaderboard import (
    ALL,
    BADGE,
    HF_URL,
    LEADERBOARD_COLUMNS,
    SCORES,
    SORT_DEFAULT,
    WHY,
    champion_key,
    column_choices,
    find_model,
    generations_of,
    leaderboard,
    lineage_key,
    link_text,
    model_choices,
    model_key,
    model_link,
    plain,
    sort_choices,
)
from space.pages.progress import STATS_COLUMNS, generation_stats, progress_figure
from space.pages.status_table import STATUS_COLUMNS, status_table
from space.pages.tree import family_tree, page_choices, page_count, page_note, tree_page, tree_png

DEFAULT_METHODS = ("linear", "slerp", "ties", "dare_ties", "task_arithmetic")
PINNED_WIDTHS = ("150px", "130px")  # the model and its fitness: kept in view while the leaderboard scrolls sideways
STATUS_REFRESH_S = 5.0
ON_SPACE, AS_JOB = "On this Space", "As a Hugging Face Job under your account"
NO_RUNS = "*No runs to show yet: seed one in the Seed tab, or start the Space over a folder of runs.*"
NO_JOBS = "*No Hugging Face Jobs have been launched from this Space yet.*"
# phone width: the title on one line and every tab in the tab bar (Gradio folds the tabs that do not fit
# into a menu, measuring them with these same styles); no box wider than the screen: tables scroll inside
# their own box, a row of controls wraps, headers stay whole words; the family tree keeps a readable size
# and scrolls inside its box
CSS = """
#title h1 { white-space: nowrap; font-size: clamp(1.4rem, 6vw, 2.2rem); }
.gradio-container { max-width: 100vw !important; }
#leaderboard, #status-table, #status-jobs, #compare-scores, #progress-table { max-width: 100%; }
#leaderboard [data-col="0"], #leaderboard [data-heading="0"], #leaderboard [data-col="1"],
#leaderboard [data-heading="1"] { position: sticky !important; z-index: 2; background: var(--table-even-background-fill); }
#leaderboard [data-col="0"], #leaderboard [data-heading="0"] { left: 0; }
#leaderboard [data-col="1"], #leaderboard [data-heading="1"] { left: MODEL_WIDTH;
  box-shadow: 2px 0 0 var(--border-color-primary); }
#leaderboard [data-col="0"] .cell-wrap { overflow: hidden; text-overflow: ellipsis; }
#status-table th, #status-jobs th, #status-table [role=columnheader], #status-jobs [role=columnheader] {
  word-break: normal !important; overflow-wrap: normal !important; white-space: nowrap !important; }
#compare-scores [role=gridcell] *, #compare-scores [role=columnheader] * { word-break: normal !important;
  overflow-wrap: break-word !important; }
#tree-image .image-frame, #tree-image .image-container { overflow: auto !important; }
#tree-image .image-frame { justify-content: safe center !important; align-items: flex-start !important; }
#tree-image img { flex: none !important; max-width: none !important; max-height: none !important;
  width: auto !important; height: auto !important; }
@media (max-width: 640px) {
  .tab-container button { padding: 0 5px !important; font-size: 13px !important; min-width: 0 !important; }
  .tab-container { gap: 0 !important; }
  #leaderboard-filters .form > * { min-width: calc(50% - 8px) !important; flex: 1 1 calc(50% - 8px) !important; }
  #progress-plot img, #pareto-plot img { min-height: 240px; object-fit: contain; }
}
""".replace("MODEL_WIDTH", PINNED_WIDTHS[0])


def build_app(
    *,
    runs_root: Path,
    controller,
    admin_token: str | None,
    allow_list: list[str],
    hub_datasets: Sequence[str] = (),
    api=None,
    task_dirs: Sequence[Path] = (),
    caps: BudgetCaps = BudgetCaps(),
    oauth: bool | None = None,
    local_root: Path | None = None,
    jobs: bool | None = None,
) -> gr.Blocks:
    """The Space. `controller` queues and steers runs (see `space.controls.controller`; None = read-only).

    `task_dirs`: folders of local lm-eval tasks a seeded run may use (other names are checked
    against lm-eval's registry); `caps`: the most one seeded run may spend; `oauth`: show the
    Hugging Face sign-in button (default: only when running on a Space, where it works); `local_root`: the
    folder under which seeded runs may name local model folders (self-hosting; None = Hub repos only); `jobs`:
    offer to launch a seeded run as a Hugging Face Job under the signed-in visitor's account (default: with
    the sign-in button).
    """
    catalog = Catalog(runs_root=runs_root, hub_datasets=hub_datasets, api=api)
    access = Access.of(admin_token=admin_token, allow_list=allow_list)
    tasks = TaskCatalog(folders=tuple(Path(d).resolve() for d in task_dirs))
    hub_url = getattr(api, "endpoint", None) or _default_endpoint()
    oauth = bool(os.environ.get("SPACE_ID")) if oauth is None else oauth
    jobs = oauth if jobs is None else jobs
    launcher = JobLauncher.under(runs_root, endpoint=hub_url, space_api=api)
    with gr.Blocks(title="hubevo") as demo:
        gr.Markdown("# hubevo\nModels bred by merging on the Hugging Face Hub: who is best, who their "
                    "parents are, and what is running.", elem_id="title")
        with gr.Row(equal_height=True, visible=oauth or access.admin_token is not None):
            if oauth:
                gr.LoginButton()
            token = gr.Textbox(label="Admin token", type="password", visible=access.admin_token is not None,
                               elem_id="admin-token", min_width=220)
        with gr.Tabs():
            board = leaderboard_tab(catalog, hub_url=hub_url)
            tree = tree_tab(catalog)
            progress = progress_tab(catalog)
            model = model_tab(catalog, hub_url=hub_url)
            seed = seed_tab(catalog, controller, access=access, token=token, tasks=tasks, caps=caps,
                            runs_root=runs_root, local_root=local_root, launcher=launcher if jobs else None)
            steering = status_tab(catalog, controller, access=access, token=token, launcher=launcher)
        status = steering["table"]
        seed_events(seed, token=token, status=status)
        pickers = [tree["model"], model["model"]]
        board["table"].select(row_picker(catalog), board["table"], pickers)
        outputs = all_outputs(board, tree, progress, model, status)
        fill = lambda: everything(catalog, hub_url=hub_url, controller=controller,  # noqa: E731
                                  downloads=board["downloads"])
        board["refresh"].click(catalog.refresh).then(fill, None, outputs)
        demo.load(fill, None, outputs)
        demo.load(steering["show_controls"], token, steering["controls"])
    return demo


def seed_events(seed: dict, *, token, status) -> None:
    """The Seed tab's buttons, wired here because queuing a run also refreshes the Status tab's table. The form's
    fields go by name; the public API takes them in the form's order, after the admin token where there is one."""
    form, job = seed["form"], seed["job"]
    seed["submit"].click(seed["queue"], token, [seed["result"], status], inputs_kwargs=form, api_name="queue_run")
    seed["upload_submit"].click(seed["queue_yaml"], [token, seed["upload"]], [seed["result"], status],
                                api_name="queue_run_yaml")
    seed["launch"].click(seed["launch_job"], None, seed["result"], inputs_kwargs={**form, **job},
                         api_name="launch_job")
    seed["upload_launch"].click(seed["launch_yaml"], [seed["upload"], job["flavor"], job["timeout"]],
                                seed["result"], api_name="launch_yaml_job")


def serve(demo: gr.Blocks, *, host: str | None = None, port: int | None = None, webhooks=None,
          webhook_secret: str | None = None, **launch) -> None:
    """Launch `demo` on `host`, else `$GRADIO_SERVER_NAME` (a Space sets 0.0.0.0), else 127.0.0.1 only; with
    `webhooks` (the scheduler), also serve the secret-checked immigrants webhook (`hubevo.hub.webhooks`)."""
    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    options = {"server_name": host, "server_port": port, "css": CSS, **launch}
    if webhooks is None:
        demo.launch(**options)
        return
    from hubevo.hub.webhooks import webhooks_server

    webhooks_server(webhooks, webhook_secret=webhook_secret or "", ui=demo).launch(share=False, **options)


def _default_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT or HF_URL


# refreshing every tab at once ----------------------------------------------------------------------------
def all_outputs(board, tree, progress, model, status) -> list:
    return [board["run"], board["generation"], board["table"], board["notes"], tree["model"], progress["run"],
            model["model"], status, board["summary"], board["columns"], board["sort"], board["compare"]["a"],
            board["compare"]["b"], board["csv"], board["parquet"]]


def everything(catalog: Catalog, *, hub_url: str, controller, downloads: Path) -> list:
    """Every tab's first view; the download buttons hold the leaderboard from the start, so a click before the
    shown table's own files are written still downloads it."""
    runs = catalog.runs()
    board = leaderboard(runs, hub_url=hub_url)
    names = [r.name for r in runs]
    choices = model_choices(runs)
    first = champion_key(runs) or (choices[0][1] if choices else None)
    other = next((key for _, key in choices if key != first), None)
    shown = column_choices(runs)
    return [
        gr.Dropdown(choices=[ALL, *names], value=ALL),
        gr.Dropdown(choices=[ALL, *map(str, generations_of(runs))], value=ALL),
        table_value(board),
        notes_markdown(catalog),
        gr.Dropdown(choices=choices, value=lineage_key(runs) or first),
        gr.Dropdown(choices=names, value=names[0] if names else None),
        gr.Dropdown(choices=choices, value=first),
        status_frame(catalog, controller),
        champion_summary(runs),
        gr.CheckboxGroup(choices=shown, value=shown),
        gr.Dropdown(choices=sort_choices(runs), value=SORT_DEFAULT),
        gr.Dropdown(choices=choices, value=first),
        gr.Dropdown(choices=choices, value=other),
        *table_files(board, folder=downloads),
    ]


def notes_markdown(catalog: Catalog) -> str:
    return "\n".join(f"- {note}" for note in catalog.notes.values())


def row_picker(catalog: Catalog):
    def pick_from_row(shown: pd.DataFrame, evt: gr.SelectData):
        """A click on a leaderboard row selects that model in the Family tree and Model tabs."""
        row = dict(zip(shown.columns, evt.row_value or [], strict=False))
        if "model" not in row:
            return gr.skip(), gr.skip()
        name, runs = link_text(row["model"]), catalog.runs()
        found = find_model(runs, model_key(str(row["run"]), name)) if "run" in row else next(
            (hit for r in runs if (hit := find_model([r], model_key(r.name, name)))), None)
        if found is None:
            return gr.skip(), gr.skip()
        key = model_key(found[0].name, found[1])
        return key, key

    return pick_from_row


# tabs --------------------------------------------------------------------------------------------------
def leaderboard_tab(catalog: Catalog, *, hub_url: str) -> dict:
    downloads = Path(tempfile.mkdtemp(prefix="hubevo-leaderboard-"))
    atexit.register(shutil.rmtree, downloads, ignore_errors=True)  # the app's own folder goes with its process
    with gr.Tab("Leaderboard", id="leaderboard"):
        summary = gr.Markdown(elem_id="champion-summary")
        with gr.Row(elem_id="leaderboard-filters"):
            run = gr.Dropdown(label="Run", choices=[ALL], value=ALL, elem_id="leaderboard-run", min_width=150)
            generation = gr.Dropdown(label="Generation", choices=[ALL], value=ALL,
                                     elem_id="leaderboard-generation", min_width=150)
            query = gr.Textbox(label="Search models, methods or runs", placeholder="e.g. ties",
                               elem_id="leaderboard-search", min_width=150)
            sort = gr.Dropdown(label="Sort by (best first)", choices=[SORT_DEFAULT], value=SORT_DEFAULT,
                               elem_id="leaderboard-sort", min_width=150)
            survivors = gr.Checkbox(label="Survivors only", min_width=150, elem_id="leaderboard-survivors")
        with gr.Accordion("Columns", open=False, elem_id="leaderboard-columns-box"):
            columns = gr.CheckboxGroup(label="Columns shown (the model always is; a score's ± column adds its "
                                       "standard error to it)", choices=[], value=[], elem_id="leaderboard-columns")
        table = gr.Dataframe(headers=LEADERBOARD_COLUMNS, interactive=False, elem_id="leaderboard", max_height=640,
                             column_widths=list(PINNED_WIDTHS))
        with gr.Row():
            csv = gr.DownloadButton("Download CSV", elem_id="download-csv", size="sm", min_width=120)
            parquet = gr.DownloadButton("Download parquet", elem_id="download-parquet", size="sm", min_width=120)
            refresh = gr.Button("Refresh", size="sm", min_width=120)
        gr.Markdown(f"Each run's rows come together, its champion ({BADGE}) first with the reason the run recorded "
                    f"in the `{WHY}` column, then its other models best first. The champion is chosen among the "
                    "finalists on validation examples, so it need not have the best fitness. Scores show "
                    "`± standard error` where it is known; validation is `-` for models that were not finalists, "
                    "held-out where a model was not scored on held-out tasks. Click a row to open that model in "
                    "the Family tree and Model tabs; a model name links to its Hub repo where the run published "
                    "it (models kept only on this machine have no link).")
        compare = compare_box()
        notes = gr.Markdown(elem_id="notes")

    def update(*, run, generation, query, survivors_only, columns, sort_by):
        """The leaderboard as the filters choose it (named as `leaderboard` names them), and its download files."""
        board = leaderboard(catalog.runs(), run=run, generation=generation, query=query or "",
                            survivors_only=bool(survivors_only), hub_url=hub_url, columns=columns, sort_by=sort_by)
        return table_value(board), *table_files(board, folder=downloads)

    def for_run(run_name):
        """A run chosen: its generations, the columns its candidates have (all shown) and its scores to sort by."""
        runs = catalog.runs()
        gens = generations_of(runs, run=run_name)
        shown = column_choices(runs, run=run_name)
        return (gr.Dropdown(choices=[ALL, *map(str, gens)], value=ALL), gr.CheckboxGroup(choices=shown, value=shown),
                gr.Dropdown(choices=sort_choices(runs, run=run_name), value=SORT_DEFAULT))

    filters = {"run": run, "generation": generation, "query": query, "survivors_only": survivors, "columns": columns,
               "sort_by": sort}
    shown_table = [table, csv, parquet]
    run.change(for_run, run, [generation, columns, sort]).then(update, None, shown_table, inputs_kwargs=filters)
    run.change(lambda name: champion_summary(catalog.runs(), run=name), run, summary)
    for control in (generation, survivors, columns, sort):
        control.change(update, None, shown_table, inputs_kwargs=filters)
    query.change(update, None, shown_table, inputs_kwargs=filters, show_progress="hidden",
                 trigger_mode="always_last")  # as one types
    compare_events(compare, catalog)
    return {"run": run, "generation": generation, "table": table, "notes": notes, "refresh": refresh,
            "summary": summary, "columns": columns, "sort": sort, "compare": compare, "csv": csv,
            "parquet": parquet, "downloads": downloads}


def table_value(table: pd.DataFrame) -> gr.Dataframe:
    """The leaderboard as the Dataframe shows it: markdown model links, scores with 3 decimals (and `± error`
    where the error column is chosen) that still sort as numbers, `-` where a score is missing."""
    scores = [c for c in table.columns if "/" in c or c in SCORES]
    value = styled(table, scores=scores)
    headers = list(value.data.columns if hasattr(value, "data") else value.columns)
    types = ["markdown" if c == "model" else "number" if c in ("rank", "generation", *scores) else "str"
             for c in headers]
    return gr.Dataframe(value=value, datatype=types, headers=headers)


def table_files(shown: pd.DataFrame, *, folder: Path) -> tuple[str, str]:
    """The shown rows as CSV and parquet files (model names plain, the champion as a column), in a folder of
    their own: gradio copies each into its cache as the event returns, and two visitors' events may run at
    once. Folders over ten minutes old were copied long since and are removed."""
    prune(folder, older_than_s=600)
    own = Path(tempfile.mkdtemp(dir=folder))
    frame = plain(shown) if len(shown.columns) and "model" in shown.columns else shown
    csv, parquet = own / "hubevo-leaderboard.csv", own / "hubevo-leaderboard.parquet"
    frame.to_csv(csv, index=False)
    frame.astype({c: str for c in frame.columns if frame[c].dtype == object}).to_parquet(parquet, index=False)
    return str(csv), str(parquet)


def prune(folder: Path, *, older_than_s: float) -> None:
    cutoff = time.time() - older_than_s
    for old in folder.iterdir():
        if old.is_dir() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)


def compare_box() -> dict:
    with gr.Accordion("Compare two models", open=False, elem_id="compare-box"):
        with gr.Row():
            a = gr.Dropdown(label="Model A", choices=[], elem_id="compare-a", min_width=160)
            b = gr.Dropdown(label="Model B", choices=[], elem_id="compare-b", min_width=160)
        scores = gr.Dataframe(interactive=False, elem_id="compare-scores", wrap=True,
                              column_widths=["31%", "27%", "27%", "15%"])  # both models in view on a phone
        diff = gr.Code(label="Recipe diff (A -> B)", language=None, interactive=False, elem_id="compare-diff")
    return {"a": a, "b": b, "scores": scores, "diff": diff}


def compare_events(compare: dict, catalog: Catalog) -> None:
    def show(key_a, key_b):
        runs = catalog.runs()
        return side_by_side(runs, key_a, key_b), recipe_diff(runs, key_a, key_b)

    for picker in (compare["a"], compare["b"]):
        picker.change(show, [compare["a"], compare["b"]], [compare["scores"], compare["diff"]])


def tree_tab(catalog: Catalog) -> dict:
    """A model's family tree, a page of a few generations at a time (`space.pages.tree.tree_page`), newest first."""
    with gr.Tab("Family tree", id="tree"):
        model = gr.Dropdown(label="Model", choices=[], elem_id="tree-model")
        pages = gr.Radio(label="Generations shown", choices=[], elem_id="tree-page", visible=False)
        note = gr.Markdown(elem_id="tree-page-note")
        picture = gr.Image(label="Family tree", show_label=False, type="pil", elem_id="tree-image",
                           interactive=False, buttons=["download", "fullscreen"])

    def draw(key, page) -> tuple:
        """The picture of page `page` of `key`'s tree, its note, and the pages to choose from."""
        found = find_model(catalog.runs(), key)
        if found is None:
            return None, "", []
        run, model_id = found
        family = family_tree(run.lineage, model_id)
        cut = tree_page(family, focus=model_id, page=min(max(int(page or 0), 0), page_count(family) - 1))
        png = tree_png(cut, focus=model_id, champion=champion_id(run.results))
        return Image.open(io.BytesIO(png)), page_note(cut), page_choices(family)

    def choose_model(key):
        image, text, choices = draw(key, 0)
        return image, text, gr.update(choices=choices, value=0 if choices else None, visible=len(choices) > 1)

    def choose_page(key, page):
        return draw(key, page)[:2]

    model.change(choose_model, model, [picture, note, pages])
    pages.input(choose_page, [model, pages], [picture, note])
    return {"model": model}


def progress_tab(catalog: Catalog) -> dict:
    with gr.Tab("Progress", id="progress"):
        run = gr.Dropdown(label="Run", choices=[], elem_id="progress-run")
        plot = gr.Plot(label="Fitness and held-out score per generation", show_label=False, elem_id="progress-plot",
                       format="png")  # the picture has its title
        stats = gr.Dataframe(headers=STATS_COLUMNS, interactive=False, elem_id="progress-table")
        gr.Markdown("Best and mean fitness of the candidates evaluated in each generation, and the champion "
                    "so far with its held-out score (held-out tasks never take part in selection).")
        gr.Markdown("### Pareto front\nEvery fully evaluated candidate by its score on each fitness task; the "
                    "front holds those no other candidate beats on every task. The champion (gold star) is "
                    "chosen among the finalists (ringed) on validation examples, so it may lie off the front.")
        front = gr.Plot(label="Pareto front", show_label=False, elem_id="pareto-plot", format="png")

    def show(run_name):
        runs = [r for r in catalog.runs() if r.name == run_name]
        if not runs:
            return None, None, None
        table = generation_stats(runs[0].results)
        scores = ["best fitness", "mean fitness", "champion fitness", "champion held-out"]
        return progress_figure(table, run_name=run_name), styled(table, scores=scores), front_figure(runs[0])

    run.change(show, run, [plot, stats, front])
    return {"run": run}


def model_tab(catalog: Catalog, *, hub_url: str) -> dict:
    with gr.Tab("Model", id="model"):
        model = gr.Dropdown(label="Model", choices=[], elem_id="model-picker")
        summary = gr.Markdown(elem_id="model-summary")
        verdict = gr.Markdown(elem_id="model-verdict")
        gr.Markdown("### Use it")
        usage = gr.Markdown(elem_id="model-use")
        recipe = gr.Code(label="Recipe (mergekit YAML)", language="yaml", interactive=False, elem_id="model-recipe",
                         visible=False)
        with gr.Accordion("Card metadata", open=False):
            metadata = gr.Code(language="yaml", interactive=False, show_label=False)
        gr.Markdown("### From its lineage card")
        card = gr.Markdown(elem_id="model-card")

    def show(key):
        found = find_model(catalog.runs(), key)
        if found is None:
            return "", "", "", gr.Code(value="", visible=False), "", ""
        run, model_id = found
        detail = model_detail(run, model_id, card=catalog.card(run, model_id))
        meta, body = card_sections(detail.card) if detail.card else ("", "*No card: seeds keep their own.*")
        return (detail_markdown(detail, hub_url=hub_url), verdict_markdown(detail), use_it(detail),
                gr.Code(value=detail.recipe, visible=bool(detail.recipe)), meta, card_prose(body))

    model.change(show, model, [summary, verdict, usage, recipe, metadata, card])
    return {"model": model}


def verdict_markdown(detail: ModelDetail) -> str:
    """Why the model is or is not its run's champion, as the run recorded it (nothing for a run that did not)."""
    if detail.verdict is None:
        return ""
    badge = f"{BADGE} " if not detail.verdict.startswith("not ") else ""
    return f"**Champion rule.** {badge}{markdown_text(detail.verdict)}"


def detail_markdown(detail: ModelDetail, *, hub_url: str) -> str:
    link = model_link(detail.repo, detail.repo, hub_url=hub_url) if detail.repo else "not on the Hub"
    scores = "\n".join(f"| {task} | {score_text(value)} |" for task, value in sorted(detail.scores.items()))
    return (
        f"## {markdown_text(detail.name)}\n\n"
        f"run `{detail.run}` · generation {detail.generation} · {detail.kind} · method **{detail.method}** · "
        f"status {detail.status}\n\n"
        f"- parents: {', '.join(f'`{p}`' for p in detail.parents) or '-'}\n"
        f"- fitness **{with_error(detail.fitness, detail.fitness_stderr)}**, validation "
        f"**{with_error(detail.validation, detail.validation_stderr)}**, held-out **{score_text(detail.heldout)}**\n"
        f"- repo: {link}\n\n"
        + (f"| score | value |\n| --- | --- |\n{scores}\n" if scores else "")
    )


def seed_tab(catalog, controller, *, access: Access, token, tasks: TaskCatalog, caps: BudgetCaps, runs_root,
             local_root: Path | None = None, launcher: JobLauncher | None = None) -> dict:
    """The seeding form; `launcher` (None = off) lets signed-in users launch the run as a Hub job instead."""
    from hubevo.config.methods import method_table

    methods = sorted(method_table())
    local_tasks = sorted(local_task_names(tasks.folders))
    places = where_choices(access, controller=controller, jobs=launcher is not None)
    with gr.Tab("Seed", id="seed"):
        gr.Markdown(seed_intro(access, caps=caps, local_tasks=local_tasks, controller=controller,
                               jobs=launcher is not None), elem_id="seed-intro")
        with gr.Column(visible=bool(places), elem_id="seed-form"):
            form = seed_fields(methods=methods, local_tasks=local_tasks, caps=caps, local_root=local_root)
            where = gr.Radio(label="Where to run", choices=places, value=places[0] if places else None,
                             visible=len(places) > 1, elem_id="seed-where")
            with gr.Row(visible=places[:1] == [AS_JOB]) as job_options:
                job = {"flavor": gr.Dropdown(label="Job hardware (billed to your account)", choices=list(FLAVORS),
                                             value=FLAVORS[0], allow_custom_value=True, elem_id="seed-flavor"),
                       "timeout": gr.Textbox(label="Job timeout (e.g. 90m, 2h, 1d)", value=DEFAULT_TIMEOUT,
                                             elem_id="seed-timeout")}
            submit = gr.Button("Queue run", variant="primary", elem_id="seed-submit", visible=places[:1] == [ON_SPACE])
            launch = gr.Button("Launch job", variant="primary", elem_id="seed-launch", visible=places[:1] == [AS_JOB])
            with gr.Accordion("Or upload a run YAML (as `hubevo evolve` reads it)", open=False):
                upload = gr.File(label="Run config (.yaml)", file_types=[".yaml", ".yml"], type="filepath",
                                 elem_id="seed-yaml")
                upload_submit = gr.Button("Queue uploaded run", elem_id="seed-yaml-submit",
                                          visible=places[:1] != [AS_JOB])
                upload_launch = gr.Button("Launch uploaded run as a job", elem_id="seed-yaml-launch",
                                          visible=places[:1] == [AS_JOB])
            result = gr.Markdown(elem_id="seed-result")
    # what every seeded run is checked against, and where it is written
    seeding = {"catalog": catalog, "tasks": tasks, "caps": caps, "runs_root": Path(runs_root), "local_root": local_root}

    def queue(token_text, profile: gr.OAuthProfile | None, **fields):
        """Queue the form's run on this Space's scheduler, for an allow-listed user or the admin."""
        try:
            user = access.user(username=profile.username if profile else None, token=token_text, action="start runs")
            queued = submit_form(seed_form(fields), user=user, controller=controller, **seeding)
        except HubevoError as err:
            return f"**Refused.** {_markdown_text(err)}", gr.skip()
        return f"**Queued** run `{queued}` for {user}; follow it in the Status tab.", status_frame(catalog, controller)

    def queue_yaml(token_text, path, profile: gr.OAuthProfile | None):
        try:
            user = access.user(username=profile.username if profile else None, token=token_text, action="start runs")
            queued = submit_yaml(Path(path).read_text(errors="replace") if path else "", user=user,
                                 controller=controller, **seeding)
        except HubevoError as err:
            return f"**Refused.** {_markdown_text(err)}", gr.skip()
        return f"**Queued** run `{queued}` for {user}; follow it in the Status tab.", status_frame(catalog, controller)

    def launch_run(profile: gr.OAuthProfile | None, oauth_token: gr.OAuthToken | None, *, flavor, timeout, **fields):
        """Launch the form's run as a Hugging Face Job under the signed-in user's account, billed to it."""
        try:
            user_token = job_token(oauth_token)
            job = submit_job(seed_form(fields), token=user_token, username=profile.username if profile else None,
                             flavor=flavor or "", timeout=timeout, launcher=launcher, controller=controller, **seeding)
        except HubevoError as err:
            return f"**Refused.** {_markdown_text(err)}"
        return launched_text(job, launcher=launcher)

    def launch_yaml(path, flavor, timeout, profile: gr.OAuthProfile | None, oauth_token: gr.OAuthToken | None):
        """Launch an uploaded run YAML as a Hugging Face Job under the signed-in user's account."""
        try:
            user_token = job_token(oauth_token)
            job = submit_yaml_job(Path(path).read_text(errors="replace") if path else "", token=user_token,
                                  username=profile.username if profile else None, flavor=flavor or "",
                                  timeout=timeout, launcher=launcher, controller=controller, **seeding)
        except HubevoError as err:
            return f"**Refused.** {_markdown_text(err)}"
        return launched_text(job, launcher=launcher)

    def show_place(place):
        job = place == AS_JOB
        return (gr.Row(visible=job), gr.Button(visible=not job), gr.Button(visible=job), gr.Button(visible=not job),
                gr.Button(visible=job))

    where.change(show_place, where, [job_options, submit, launch, upload_submit, upload_launch])
    return {"form": form, "job": job, "upload": upload, "result": result, "submit": submit, "queue": queue,
            "upload_submit": upload_submit, "queue_yaml": queue_yaml, "launch": launch, "launch_job": launch_run,
            "upload_launch": upload_launch, "launch_yaml": launch_yaml}


def seed_fields(*, methods: list[str], local_tasks: list[str], caps: BudgetCaps, local_root: Path | None) -> dict:
    """The seeding form's inputs by the names `space.controls.seeding.seed_form` reads. The dict's order is the
    public API's (`client.predict` takes the fields in this order), so a new field goes last."""
    form = {}
    with gr.Row():
        form["name"] = gr.Textbox(label="Run name", placeholder="my-run", elem_id="seed-name")
        form["namespace"] = gr.Textbox(label="Publish namespace (user or org)", elem_id="seed-namespace")
        form["push"] = gr.Dropdown(label="Publish", choices=list(PUSH_MODES), value="none")
        form["private"] = gr.Checkbox(label="Private repos", value=True)
    with gr.Row():
        form["candidates"] = gr.Textbox(label=candidates_label(local_root), lines=4, elem_id="seed-candidates")
        form["base_model"] = gr.Textbox(label="Base model repo id (needed by ties, dare_*, task_arithmetic, ...)",
                                        elem_id="seed-base")
    with gr.Accordion("Or find candidates with a Hub query", open=False):
        with gr.Row():
            form["query_author"] = gr.Textbox(label="Author")
            form["query_search"] = gr.Textbox(label="Search")
            form["query_filter"] = gr.Textbox(label="Tags (comma separated), e.g. base_model:org/name")
            form["query_limit"] = gr.Number(label="At most", value=8)
    form["methods"] = gr.CheckboxGroup(label="Merge methods", choices=methods,
                                       value=[m for m in DEFAULT_METHODS if m in methods], elem_id="seed-methods")
    with gr.Row():
        form["tasks"] = gr.Textbox(label="Fitness tasks", value=", ".join(local_tasks[:1]), elem_id="seed-tasks")
        form["heldout"] = gr.Textbox(label="Held-out tasks", elem_id="seed-heldout")
        form["limit"] = gr.Number(label="Examples per task", value=64)
    with gr.Row():
        form["generations"] = gr.Number(label=f"Generations (≤ {caps.generations})", value=3)
        form["population_size"] = gr.Number(label=f"Population size (≤ {caps.population_size})", value=6)
        form["max_evaluations"] = gr.Number(label=f"Max evaluations (≤ {caps.max_evaluations})",
                                            value=caps.max_evaluations)
        form["wall_hours"] = gr.Number(label=f"Wall time, hours (≤ {caps.wall_time_s / 3600:g})",
                                       value=caps.wall_time_s / 3600)
    return form


def candidates_label(local_root: Path | None) -> str:
    if local_root is None:
        return "Candidate repo ids (one per line, org/name[@revision])"
    return f"Candidates (one per line): Hub repo ids, or local folders under {local_root}"


def submit_form(form: SeedForm, *, user: str, controller, catalog: Catalog, tasks: TaskCatalog, caps: BudgetCaps,
                runs_root: Path, local_root: Path | None = None) -> str:
    """Validate `form` against the caps and the runs that exist, then queue it; returns the run's name."""
    taken = taken_names(controller, catalog=catalog)
    config = build_run_config(form, runs_root=runs_root, tasks=tasks, caps=caps, taken=taken, local_root=local_root)
    return controller.submit(config, user=user)


def submit_yaml(text: str, *, user: str, controller, catalog: Catalog, tasks: TaskCatalog, caps: BudgetCaps,
                runs_root: Path, local_root: Path | None = None) -> str:
    """Validate an uploaded run YAML like the form, then queue it; returns the run's name."""
    taken = taken_names(controller, catalog=catalog)
    if not text.strip():
        raise SeedError("choose a run YAML file to upload first")
    config = config_from_yaml(text, runs_root=runs_root, tasks=tasks, caps=caps, taken=taken, local_root=local_root)
    return controller.submit(config, user=user)


def submit_job(form: SeedForm, *, token: str, username: str | None, flavor: str, timeout: str | None,
               launcher: JobLauncher | None, controller, catalog: Catalog, tasks: TaskCatalog, caps: BudgetCaps,
               runs_root: Path, local_root: Path | None = None) -> LaunchedJob:
    """Validate `form` exactly as for a run on this Space, then launch it as a job under the user's account."""
    taken = job_names_taken(launcher, controller=controller, catalog=catalog)
    config = build_run_config(form, runs_root=runs_root, tasks=tasks, caps=caps, taken=taken, local_root=local_root)
    return launch_job(config, token=token, username=username, flavor=flavor, timeout=timeout, launcher=launcher)


def submit_yaml_job(text: str, *, token: str, username: str | None, flavor: str, timeout: str | None,
                    launcher: JobLauncher | None, controller, catalog: Catalog, tasks: TaskCatalog, caps: BudgetCaps,
                    runs_root: Path, local_root: Path | None = None) -> LaunchedJob:
    """Validate an uploaded run YAML exactly as for a run on this Space, then launch it as a job."""
    taken = job_names_taken(launcher, controller=controller, catalog=catalog)
    if not text.strip():
        raise SeedError("choose a run YAML file to upload first")
    config = config_from_yaml(text, runs_root=runs_root, tasks=tasks, caps=caps, taken=taken, local_root=local_root)
    return launch_job(config, token=token, username=username, flavor=flavor, timeout=timeout, launcher=launcher)


def job_names_taken(launcher: JobLauncher | None, *, controller, catalog: Catalog) -> list[str]:
    """The run names a new job may not take; AccessDenied when this deployment launches no jobs."""
    if launcher is None:
        raise AccessDenied("this deployment launches no Hugging Face Jobs: it has no Hugging Face sign-in")
    return [*shown_names(controller, catalog=catalog), *launcher.run_names()]


def launched_text(job: LaunchedJob, *, launcher: JobLauncher) -> str:
    url = job_url(job.job_id, namespace=job.namespace, endpoint=launcher.endpoint)
    return (f"**Launched** run `{job.run}` as Hugging Face Job [`{job.job_id}`]({url}) under `{job.owner}` on "
            f"{job.flavor}, billed to that account; its state and logs are in the Status tab.")


def taken_names(controller, *, catalog: Catalog) -> list[str]:
    """The names queued or shown already; refuses when no scheduler could take a run."""
    if controller is None:
        raise AccessDenied("this deployment has no scheduler attached; it only shows results")
    return shown_names(controller, catalog=catalog)


def shown_names(controller, *, catalog: Catalog) -> list[str]:
    """The run names the scheduler holds (if there is one) and the catalog shows."""
    return [*(s.get("name") for s in (controller.status() if controller is not None else [])),
            *(r.name for r in catalog.runs())]


def seeding_on(access: Access, *, controller) -> bool:
    """Whether anyone could queue a run here: a scheduler is attached and someone is allowed to act."""
    return controller is not None and access.anyone_can_act


def where_choices(access: Access, *, controller, jobs: bool) -> list[str]:
    """Where a seeded run may go here: this Space's hardware, a Hub job under the user's account, both or neither."""
    return [place for place, on in ((ON_SPACE, seeding_on(access, controller=controller)), (AS_JOB, jobs)) if on]


def seed_intro(access: Access, *, caps: BudgetCaps, local_tasks: list[str], controller, jobs: bool = False) -> str:
    who = ("Queuing a run needs an allow-listed Hugging Face account (sign in above) or the admin token."
           if access.anyone_can_act else "Seeding is switched off: no allow-list and no admin token are configured.")
    if controller is None:
        who = "Seeding is switched off: no scheduler is attached to this deployment."
    if jobs:
        own = seeding_on(access, controller=controller)
        here = who if own else "This Space runs no populations on its own hardware."
        who = (f"{here} Signed in, anyone may launch the run as a Hugging Face Job under their own account: it is "
               "billed to that account, publishes to the namespace given and keeps its state on the Hub.")
    if not where_choices(access, controller=controller, jobs=jobs):
        return (f"### Start a population\n{who} To evolve models of your own, run `hubevo evolve run.yaml` on "
                "your machine, or start this app with `hubevo space` and `HUBEVO_ADMIN_TOKEN` (or "
                "`HUBEVO_ALLOW_LIST`) set.")
    tasks = f" Local tasks: {', '.join(f'`{t}`' for t in local_tasks)}." if local_tasks else ""
    return (f"### Start a population\n{who} Each run may use at most {caps.generations} generations, "
            f"{caps.population_size} models per generation, {caps.max_evaluations} evaluations and "
            f"{caps.wall_time_s / 3600:g} hours; open budgets are filled with these caps.{tasks}")


def status_tab(catalog: Catalog, controller, *, access: Access, token, launcher: JobLauncher | None = None
               ) -> dict:
    with gr.Tab("Status", id="status") as tab:
        table = gr.Dataframe(headers=STATUS_COLUMNS, interactive=False, elem_id="status-table")
        empty = gr.Markdown(NO_RUNS, elem_id="status-empty")
        with gr.Row(visible=False, elem_id="status-controls") as controls:
            name = gr.Textbox(label="Run", placeholder="run name", elem_id="status-run")
            pause, resume, stop = (gr.Button("Pause"), gr.Button("Resume"), gr.Button("Stop", variant="stop"))
        message = gr.Markdown(elem_id="status-message")
        timer = gr.Timer(STATUS_REFRESH_S)
        jobs_box(tab, launcher=launcher)

    def show_controls(token_text, profile: gr.OAuthProfile | None):
        """Pause, Resume and Stop for whoever may use them here (each handler checks again on the server)."""
        return gr.Row(visible=may_steer(access, controller=controller, token=token_text,
                                        username=profile.username if profile else None))

    def act(verb: str):
        def handler(token_text, run_name, profile: gr.OAuthProfile | None):
            try:
                user = access.user(username=profile.username if profile else None, token=token_text,
                                   action=f"{verb} runs")
                steer(controller, verb, (run_name or "").strip())
            except HubevoError as err:
                return f"**Refused.** {_markdown_text(err)}", gr.skip()
            return f"{verb}: `{run_name}` (by {user})", status_frame(catalog, controller)
        return handler

    for button, verb in ((pause, "pause"), (resume, "resume"), (stop, "stop")):
        button.click(act(verb), [token, name], [message, table], api_name=verb)
    timer.tick(lambda: status_frame(catalog, controller), None, table, show_progress="hidden")
    table.change(lambda shown: gr.Markdown(visible=not len(shown)), table, empty, show_progress="hidden")
    token.change(show_controls, token, controls, show_progress="hidden")
    return {"table": table, "controls": controls, "show_controls": show_controls}


def may_steer(access: Access, *, controller, token: str | None, username: str | None) -> bool:
    """Whether this visitor may pause, resume and stop runs here: a scheduler is attached and they may act."""
    if controller is None:
        return False
    try:
        access.user(username=username, token=token, action="steer runs")
    except AccessDenied:
        return False
    return True


def jobs_box(tab: gr.Tab, *, launcher: JobLauncher | None) -> None:
    """The Hub jobs launched from the Seed tab: state and a logs link, read when the tab opens or on refresh."""
    gr.Markdown("### Hugging Face Jobs launched from this Space\nA job's state is read with your sign-in for "
                "your own jobs (with the Space's token for others: `unknown` where it may not read them).")
    jobs = gr.Dataframe(headers=JOB_COLUMNS, datatype=["markdown" if c == "logs" else "str" for c in JOB_COLUMNS],
                        interactive=False, elem_id="status-jobs")
    empty = gr.Markdown(NO_JOBS, elem_id="status-jobs-empty")
    refresh = gr.Button("Refresh jobs", size="sm", elem_id="status-jobs-refresh")

    def show_jobs(profile: gr.OAuthProfile | None, oauth_token: gr.OAuthToken | None) -> pd.DataFrame:
        if launcher is None:
            return pd.DataFrame(columns=JOB_COLUMNS)
        return job_rows(launcher.book.jobs(), launcher=launcher, viewer=profile.username if profile else None,
                        viewer_token=getattr(oauth_token, "token", None))

    gr.on([tab.select, refresh.click], show_jobs, None, jobs, api_name="space_jobs", show_progress="hidden")
    jobs.change(lambda shown: gr.Markdown(visible=not len(shown)), jobs, empty, show_progress="hidden")


def steer(controller, verb: str, name: str) -> None:
    """Pause, resume or stop a run the controller knows (never create one by naming it)."""
    if controller is None:
        raise AccessDenied("this deployment has no scheduler attached")
    known = [str(s.get("name")) for s in controller.status()]
    if name not in known:
        raise UnknownNameError(unknown_name("run", name, known, plural="runs managed here"))
    getattr(controller, verb)(name)


def status_frame(catalog: Catalog, controller) -> pd.DataFrame:
    managed = controller.status() if controller is not None else []
    found = catalog.statuses()
    return status_table(merge_statuses(managed, found))


def _markdown_text(err: Exception) -> str:
    return str(err).replace("\n- ", "\n\n- ")
