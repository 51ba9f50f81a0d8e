"""hubevo: evolve language models on the Hugging Face Hub by merging, fine-tuning and selection.

The loop is seed -> evaluate -> select -> crossover -> mutate -> publish; each stage is a package, and
the packages are layered: a module imports only its own layer and the layers below it, never a higher
one, and no two modules import each other (`tests/test_layers.py` reads the imports and checks both).
Bottom to top:

| layer | job |
| --- | --- |
| errors, registry, fsio, files, terminal | the error hierarchy, name -> thing tables, atomic files, reading the user's files, the terminal's switches |
| config | the run file: frozen pydantic models, YAML loading, every error at once |
| hub | every huggingface_hub call: the client, downloads, listings, repos, cards, jobs, webhooks |
| evaluation | 2 evaluate: lm-eval tasks and checks, the sampling plan, the scorer, the lm-eval fence |
| finetune | 5 mutate by training: DPO and SFT with trl and peft |
| breed | 4-5 genomes, crossover, mutation, standard recipes, mergekit's fence (materialize) |
| seed | 1 seed: members resolved and checked, Hub discovery, immigrants from webhooks |
| selection | 3 select: the ranking rule and the champion, parent selection, Pareto fronts |
| state | the run state, its status and events: what `--resume` reads |
| search | ask/tell strategies over a read-only view of the population: ga, cmaes, dfs, nsga2, random, m2n2 |
| execute | where candidates run: the runner, the local and Ray backends, racing |
| publish | 6 publish: survivor folders, cards, tables, exports, the Hub push, the resolver |
| run | the orchestrator: the loop, its checks and lock, continuous mode, state sync |
| demo | the demo zoo and the demo run |
| space, space.data | the Gradio Space's data (a top-level package beside hubevo): runs and their numbers, read |
| space.pages | the Space's pages: the tabs' views, pure functions of a run's data |
| space.controls | the Space's controls: who may act, seeding, jobs, and the Gradio wiring |
| cli | the command line |
"""

__version__ = "0.1.0"

# (modules or packages of one layer, what they do), bottom to top: the table above, read by tests/test_layers.py
LAYERS: tuple[tuple[str, str], ...] = (
    ("hubevo hubevo.errors hubevo.registry hubevo.fsio hubevo.files hubevo.terminal",
     "the error hierarchy, name -> thing tables, atomic files, reading the user's files, the terminal's switches"),
    ("hubevo.config", "the run file: frozen pydantic models, YAML loading, every error at once"),
    ("hubevo.hub", "every huggingface_hub call: the client, downloads, listings, repos, cards, jobs, webhooks"),
    ("hubevo.evaluation", "2 evaluate: lm-eval tasks and checks, the sampling plan, the scorer, the lm-eval fence"),
    ("hubevo.finetune", "5 mutate by training: DPO and SFT with trl and peft"),
    ("hubevo.breed", "4-5 genomes, crossover, mutation, standard recipes, mergekit's fence (materialize)"),
    ("hubevo.seed", "1 seed: members resolved and checked, Hub discovery, immigrants from webhooks"),
    ("hubevo.selection", "3 select: the ranking rule and the champion, parent selection, Pareto fronts"),
    ("hubevo.state", "the run state, its status and events: what `--resume` reads"),
    ("hubevo.search", "ask/tell strategies over a read-only view of the population: ga, cmaes, dfs, nsga2, random, m2n2"),
    ("hubevo.execute", "where candidates run: the runner, the local and Ray backends, racing"),
    ("hubevo.publish", "6 publish: survivor folders, cards, tables, exports, the Hub push, the resolver"),
    ("hubevo.run", "the orchestrator: the loop, its checks and lock, continuous mode, state sync"),
    ("hubevo.demo", "the demo zoo and the demo run"),
    ("space space.data", "the Gradio Space's data (a top-level package beside hubevo): runs and their numbers, read"),
    ("space.pages", "the Space's pages: the tabs' views, pure functions of a run's data"),
    ("space.controls", "the Space's controls: who may act, seeding, jobs, and the Gradio wiring"),
    ("hubevo.cli", "the command line"),
)
