"""A mergekit-evolve config read as a hubevo run file, field by field (config stage).

`mergekit-evolve` (mergekit's CMA-ES script; `mergekit.evo.config.EvolMergeConfiguration`) reads a YAML
file with `genome:` (the models, and the merge method whose genes are searched per layer group) and
`tasks:` (lm-eval tasks), plus command-line options (`--max-fevals`, `--random-seed`, `--storage-path`...).
`convert` maps both onto a hubevo run: CMA-ES over the same method's genes per layer group
(`search.strategy: cmaes`), the same tasks and budget. Every field and option given ends up either mapped
(a note says into what) or named as not mapped (a note says why: the run differs there). `render` writes
the commented run file `hubevo convert` prints; `hubevo evolve` runs a mergekit-evolve file as converted here.

Pure data, and mergekit is never imported: its schema is restated below as `hubevo.config.methods`
restates its method names, and tests/config/test_mergekit_evolve.py checks it against mergekit's own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hubevo.config.commented import comment_lines, commented_yaml
from hubevo.config.population import REPO_ID
from hubevo.config.run import RunConfig
from hubevo.errors import ConfigError

# mergekit.evo.genome.METHOD_PARAM_MAPS: the methods mergekit-evolve searches and the genes of each
EVOLVE_METHODS = {"linear": ("weight",), "task_arithmetic": ("weight",), "ties": ("weight", "density"),
                  "dare_ties": ("weight", "density"), "slerp": ("t",)}
NEEDS_BASE = ("ties", "dare_ties", "task_arithmetic")  # mergekit-evolve refuses these without base_model
EVOLVE_NORMALIZED = ("ties", "dare_ties", "linear")  # `normalize: null` means true for these (ModelGenome)
MERGEKIT_NORMALIZE = {"linear": True, "ties": True, "dare_ties": False, "task_arithmetic": False}  # the methods'
# own defaults in mergekit's registry, which hubevo merges with (it sets no `normalize`)
GENOME_FIELDS = ("models", "merge_method", "base_model", "tokenizer_source", "layer_granularity", "normalize",
                 "allow_negative_weights", "filters", "smooth")  # mergekit.evo.genome.ModelGenomeDefinition
TOP_FIELDS = ("genome", "tasks", "limit", "num_fewshot", "shuffle", "random_init", "apply_chat_template",
              "fewshot_as_multiturn")  # mergekit.evo.config.EvolMergeConfiguration
DEFAULT_METRIC = "acc,none"
DEFAULT_MAX_FEVALS = 100
BENCHMARK_FLAG = "--i-understand-the-depths-of-the-evils-i-am-unleashing"

# mergekit-evolve's command-line options (mergekit/scripts/evolve.py): flag -> kind, for `hubevo convert`.
# kinds: int, float, str, path, paths (repeatable), switch (--x/--no-x), flag (--x), strategy
OPTIONS = {
    "--max-fevals": "int", "--vllm": "switch", "--strategy": "strategy", "--in-memory": "switch",
    "--storage-path": "path", "--num-gpus": "int", "--merge-cuda": "switch", "--trust-remote-code": "switch",
    "--allow-crimes": "switch", "--random-seed": "int", "--batch-size": "int", "--sigma0": "float",
    "--wandb": "switch", "--wandb-project": "str", "--wandb-entity": "str", "--task-search-path": "paths",
    BENCHMARK_FLAG: "flag", "--save-final-model": "switch", "--reshard": "switch", "--timeout": "float",
    "--load-in-8bit": "flag", "--load-in-4bit": "flag", "--force-population-size": "int",
}
EVOLVE_STRATEGIES = ("pool", "buffered", "serial")


def is_mergekit_evolve(data) -> bool:
    """Whether parsed YAML is a mergekit-evolve config: top-level `genome:` and `tasks:`."""
    return isinstance(data, Mapping) and "genome" in data and "tasks" in data


@dataclass(frozen=True)
class Conversion:
    """A mergekit-evolve config as a hubevo run: the run file's data, and what became of each source field."""

    data: dict  # the hubevo run file, as plain data
    notes: dict[str, str]  # dotted hubevo field -> the comment above it (where it came from)
    mapped: dict[str, list[str]]  # mergekit-evolve field or option -> the hubevo fields it set
    same: dict[str, str]  # mergekit-evolve field or option that needs no field -> why (hubevo does it anyway)
    unmapped: dict[str, str]  # mergekit-evolve field or option -> why hubevo cannot follow it

    def summary(self, source: str) -> str:
        """One line: what was read, and what was left out."""
        left = f"; not mapped: {', '.join(self.unmapped)}" if self.unmapped else "; every field mapped"
        return (f"read {source} as a mergekit-evolve config and converted it in memory to a hubevo run "
                f"(`hubevo convert {source}` with the same options writes that run file){left}")


@dataclass
class _Builder:
    data: dict = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    mapped: dict[str, list[str]] = field(default_factory=dict)
    same: dict[str, str] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def put(self, target: str, value, *, source: str, note: str = "") -> None:
        """Set hubevo field `target` (dotted) from `source`; `note` says how it relates."""
        said = f"{source}{f': {note}' if note else ''}"
        self.derive(target, value, note=f"{self.notes[target]}; {said}" if target in self.notes else said)
        self.mapped.setdefault(source, []).append(target)

    def derive(self, target: str, value, *, note: str) -> None:
        """Set hubevo field `target` from no one field: `note` says why it has this value."""
        *parents, last = target.split(".")
        node = self.data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
        self.notes[target] = note

    def keep(self, source: str, why: str) -> None:
        """`source` needs no field: hubevo does what it asks anyway."""
        self.same[source] = why

    def skip(self, source: str, why: str) -> None:
        self.unmapped[source] = why

    def done(self) -> Conversion:
        order = [name for name in RunConfig.model_fields if name in self.data]
        return Conversion(data={name: self.data[name] for name in order}, notes=self.notes, mapped=self.mapped,
                          same=self.same, unmapped=self.unmapped)


@dataclass(frozen=True)
class _Places:
    """Where relative paths are read from and written for: mergekit-evolve reads them in the working directory;
    hubevo reads a run file's paths relative to the file."""

    source_dir: Path  # the mergekit-evolve file's folder
    out_dir: Path  # the folder of the run file written
    cwd: Path  # where mergekit-evolve would have run

    def local(self, text: str, *, roots: tuple[Path, ...]) -> Path | None:
        """Where `text` is on disk (the first root it exists under), None if it is not a local path."""
        path = Path(text).expanduser()
        if path.is_absolute():
            return path
        found = next((_absolute(root / path) for root in roots if (root / path).exists()), None)
        if found is None and text.startswith((".", "~")):
            return _absolute(roots[0] / path)  # named as a folder: the run names it if it is missing
        return found

    def written(self, path: Path) -> str:
        """`path` as the run file names it: relative to its folder, starting with `.` so that it reads as local."""
        try:
            rel = os.path.relpath(path, self.out_dir)
        except ValueError:  # another drive
            return str(path)
        return rel if rel.startswith(".") else f"./{rel}"

    def option_path(self, text: str) -> str:
        """A path given on mergekit-evolve's command line (relative to the working directory)."""
        return self.written(self.local(text, roots=(self.cwd,)) or _absolute(self.cwd / text))


def _absolute(path: Path) -> Path:
    """`path` made absolute without following links (a linked folder keeps the name it was given)."""
    return Path(os.path.abspath(path))


def convert(data: Mapping, *, options: Mapping | None = None, source: str = "mergekit-evolve config",
            source_dir: Path = Path("."), out_dir: Path | None = None, cwd: Path | None = None) -> Conversion:
    """The hubevo run of a mergekit-evolve config `data` and its command-line `options` (flag -> value, only
    those given). Relative paths are found beside the file or in `cwd`, and written relative to `out_dir` (the
    run file's folder; default: the source file's). A config mergekit-evolve itself would refuse raises one
    ConfigError line naming every problem."""
    options = dict(options or {})
    places = _Places(source_dir=_absolute(Path(source_dir)), out_dir=_absolute(Path(out_dir or source_dir)),
                     cwd=_absolute(Path(cwd or Path.cwd())))
    build = _Builder()
    unknown_options = sorted(set(options) - set(OPTIONS))
    if unknown_options:
        build.problems.append(f"unknown mergekit-evolve option(s) {', '.join(unknown_options)}")
    genome = data.get("genome")
    if not isinstance(genome, Mapping):
        build.problems.append("genome: must be a mapping with models and merge_method")
        genome = {}
    _name(build, source=source)
    _population(build, genome, places=places)
    _search(build, genome)
    _genome_rest(build, genome)
    _fitness(build, data, options=options, places=places)
    _options(build, options, places=places)
    for key in data:
        if key not in TOP_FIELDS:
            build.skip(str(key), "not a field of mergekit-evolve's config (mergekit-evolve ignores it too)")
    if build.problems:
        raise ConfigError(f"mergekit-evolve config {source}: " + "; ".join(build.problems))
    return build.done()


def _name(build: _Builder, *, source: str) -> None:
    stem = Path(source.strip("'\"")).stem
    name = re.sub(r"[^\w.-]+", "-", stem).strip("-.") or "mergekit-evolve"
    build.derive("name", name, note="the mergekit-evolve file's name")


# genome -------------------------------------------------------------------------------------------


def _model(build: _Builder, ref, *, where: str, places: _Places) -> str | dict | None:
    """A mergekit ModelReference (`path[@revision]`, or {model: ..., lora: ...}) as a hubevo member."""
    if isinstance(ref, Mapping):
        if ref.get("lora") or ref.get("override_architecture"):
            build.problems.append(f"{where}: a LoRA adapter or override_architecture cannot be a hubevo member; "
                                  "merge the adapter into its model first and name that folder")
            return None
        model = ref.get("model")
        ref = (f"{model['path']}@{model['revision']}" if model.get("revision") else model.get("path")) \
            if isinstance(model, Mapping) else model
    if not isinstance(ref, str) or not ref:
        build.problems.append(f"{where}: {ref!r} is not a model (a folder or a Hub repo id)")
        return None
    if "+" in ref:
        build.problems.append(f"{where}: {ref!r} names a LoRA adapter (model+adapter), which a hubevo member "
                              "cannot carry; merge the adapter into its model first and name that folder")
        return None
    if ref.count("@") > 1:
        build.problems.append(f"{where}: {ref!r} has more than one @")
        return None
    local = places.local(ref, roots=(places.source_dir, places.cwd))
    if local is not None:
        return places.written(local)
    return ref if REPO_ID.match(ref) else {"repo": ref}  # the run names a repo id the Hub would refuse


def _population(build: _Builder, genome: Mapping, *, places: _Places) -> None:
    models = genome.get("models")
    if not isinstance(models, list) or not models:
        build.problems.append("genome.models: give the list of models to merge")
        models = []
    members = [_model(build, ref, where=f"genome.models[{i}]", places=places) for i, ref in enumerate(models)]
    if models:
        build.put("population.members", members, source="genome.models",
                  note="local folders (found beside the mergekit-evolve file or in the working directory, as "
                       "mergekit-evolve reads them) are relative to this file; the rest are Hub repos")
    if genome.get("base_model") is not None:
        base = _model(build, genome["base_model"], where="genome.base_model", places=places)
        build.put("population.base_model", base, source="genome.base_model")


def _search(build: _Builder, genome: Mapping) -> None:
    method = genome.get("merge_method")
    if method not in EVOLVE_METHODS:
        build.problems.append(f"genome.merge_method: {method!r} is not one mergekit-evolve searches; "
                              f"give one of {', '.join(EVOLVE_METHODS)}")
        return
    if method in NEEDS_BASE and genome.get("base_model") is None:
        build.problems.append(f"genome.base_model: merge method {method} needs a base model")
    build.put("search.strategy", "cmaes", source="genome.merge_method",
              note="mergekit-evolve's search, CMA-ES over one method's genes (Akiba et al.'s parameter space)")
    build.put("search.options.method", method, source="genome.merge_method")
    build.put("search.options.genes", list(EVOLVE_METHODS[method]), source="genome.merge_method",
              note=f"the genes mergekit-evolve searches for {method}, per model and layer group")
    granularity = genome.get("layer_granularity", 0)
    if not isinstance(granularity, int) or isinstance(granularity, bool) or granularity < 0:
        build.problems.append(f"genome.layer_granularity: {granularity!r} must be a whole number >= 0")
    build.put("search.options.layer_granularity", granularity, source="genome.layer_granularity",
              note="layers per gene group (0 = one group for the whole model, mergekit-evolve's default)")
    _ranges(build, genome, method=method)
    filters = genome.get("filters")
    if filters:
        if method == "slerp":
            build.problems.append("genome.filters: mergekit-evolve does not filter tensors for slerp")
        if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
            build.problems.append(f"genome.filters: {filters!r} must be a list of tensor-name substrings")
        build.put("search.options.modules", filters, source="genome.filters",
                  note="genes apart for tensors whose names contain each, plus one set for the rest")
    build.derive("search.options.restarts", 0,
                 note="CMA-ES without restarts, as mergekit-evolve runs pycma (hubevo's default: 4 IPOP restarts)")


def _ranges(build: _Builder, genome: Mapping, *, method: str) -> None:
    """mergekit-evolve searches unbounded values, using |weight| and |t| unless negative weights are allowed and
    clamping density to [0, 1]; hubevo searches [0, 1] coordinates mapped onto each gene's range."""
    negative = genome.get("allow_negative_weights", False)
    if not isinstance(negative, bool):
        build.problems.append(f"genome.allow_negative_weights: {negative!r} must be true or false")
    ranges = {"weight": [-1.0, 1.0] if negative else [0.0, 1.0], "density": [0.0, 1.0], "t": [0.0, 1.0]}
    genes = EVOLVE_METHODS[method]
    build.put("search.options.ranges", {g: ranges[g] for g in genes}, source="genome.allow_negative_weights",
              note="the genes' ranges: weights from -1 with negative weights allowed, else from 0; density "
                   "in [0, 1] (mergekit-evolve's clamp)")
    if negative and method == "slerp":
        build.skip("genome.allow_negative_weights", "slerp's t stays in [0, 1] in hubevo")


def _genome_rest(build: _Builder, genome: Mapping) -> None:
    method = genome.get("merge_method")
    _normalize(build, genome, method=method)
    if genome.get("smooth"):
        if method == "slerp":
            build.problems.append("genome.smooth: mergekit-evolve does not smooth slerp")
        build.skip("genome.smooth", "hubevo gives each layer group one value per gene; it does not interpolate "
                                    "values across layers")
    elif "smooth" in genome:
        build.keep("genome.smooth", "one value per gene and layer group, as hubevo does")
    if genome.get("tokenizer_source") is not None:
        build.skip("genome.tokenizer_source", "hubevo merges members that share one tokenizer and keeps it")
    elif "tokenizer_source" in genome:
        build.keep("genome.tokenizer_source", "the members' shared tokenizer, as hubevo keeps it")
    for key in genome:
        if key not in GENOME_FIELDS:
            build.skip(f"genome.{key}", "not a field of mergekit-evolve's genome (mergekit-evolve ignores it too)")


def _normalize(build: _Builder, genome: Mapping, *, method) -> None:
    if method not in MERGEKIT_NORMALIZE:
        if genome.get("normalize") is not None:
            build.keep("genome.normalize", f"{method} has no normalize")
        return
    given = genome.get("normalize")
    wanted = given if given is not None else method in EVOLVE_NORMALIZED
    default = MERGEKIT_NORMALIZE[method]
    if wanted == default:
        if "normalize" in genome:
            build.keep("genome.normalize", f"hubevo merges {method} with mergekit's default, normalize: "
                                           f"{str(default).lower()}, the same")
        return
    said = "" if given is not None else " (mergekit-evolve's default for it)"
    build.skip("genome.normalize", f"mergekit-evolve merges {method} with normalize: {str(wanted).lower()}{said}; "
                                   f"hubevo with mergekit's default for {method}, normalize: {str(default).lower()}")


# tasks and evaluation ------------------------------------------------------------------------------


def _task(build: _Builder, task, *, index: int) -> dict | None:
    where = f"tasks[{index}]"
    if isinstance(task, str):
        task = {"name": task}
    if not isinstance(task, Mapping) or not isinstance(task.get("name"), str):
        build.problems.append(f"{where}: {task!r} is not a task (a name, or name, weight and metric)")
        return None
    weight, metric = task.get("weight", 1.0), str(task.get("metric", DEFAULT_METRIC))
    if not isinstance(weight, (int, float)) or isinstance(weight, bool):
        build.problems.append(f"{where}.weight: {weight!r} is not a number")
        return None
    if weight <= 0:
        build.skip(f"{where} ({task['name']})", f"weight {weight}: hubevo maximises a weighted mean with "
                                                "positive weights, so this task is left out")
        return None
    for key in set(task) - {"name", "weight", "metric"}:
        build.skip(f"{where}.{key}", "not a field of a mergekit-evolve task")
    return {"name": task["name"], "weight": float(weight), "metric": metric.removesuffix(",none")}


def _fitness(build: _Builder, data: Mapping, *, options: Mapping, places: _Places) -> None:
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        build.problems.append("tasks: give the list of lm-eval tasks to score")
        tasks = []
    specs = [s for i, t in enumerate(tasks) if (s := _task(build, t, index=i)) is not None]
    if tasks and not specs and not build.problems:
        build.problems.append("tasks: no task with a positive weight is left for hubevo to maximise")
    if specs:
        build.put("fitness.tasks", specs, source="tasks",
                  note="the weighted mean of these metrics is the fitness (metric 'acc,none' is written 'acc'; "
                       f"mergekit-evolve's default metric is {DEFAULT_METRIC})")
    _positive(build, data, "limit", target="fitness.limit",
              note="examples per task: hubevo scores a seeded sample of that many, the same for every candidate")
    if data.get("num_fewshot") is not None:
        _positive(build, data, "num_fewshot", target="fitness.lm_eval_kwargs.num_fewshot", low=0)
    for key in ("apply_chat_template", "fewshot_as_multiturn"):
        value = data.get(key, True)
        if not isinstance(value, bool):
            build.problems.append(f"{key}: {value!r} must be true or false")
        said = "" if key in data else " (mergekit-evolve's default)"
        build.put(f"fitness.lm_eval_kwargs.{key}", value, source=key, note=f"passed to lm-eval{said}")
    if "shuffle" in data:
        build.keep("shuffle", "hubevo always scores a seeded random sample of fitness.limit examples (one for "
                              "the run; fitness.resample: true draws a new one each generation)")
    _random_init(build, data)
    if options.get("--task-search-path"):
        paths = [places.option_path(p) for p in options["--task-search-path"]]
        build.put("fitness.include_path", paths, source="--task-search-path",
                  note="folders of local lm-eval tasks, relative to this file")


def _positive(build: _Builder, data: Mapping, key: str, *, target: str, note: str = "", low: int = 1) -> None:
    value = data.get(key)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        build.problems.append(f"{key}: {value!r} must be a whole number >= {low}")
        return
    build.put(target, value, source=key, note=note)


def _random_init(build: _Builder, data: Mapping) -> None:
    if data.get("random_init"):
        build.skip("random_init", "hubevo's CMA-ES starts at one point (search.options.x0 in every coordinate), "
                                  "not at a random one")
    elif "random_init" in data:
        build.put("search.options.x0", 0.5, source="random_init",
                  note="a fixed start: the middle of every gene's range (mergekit-evolve: weight 1/n, density 1)")


# command-line options -------------------------------------------------------------------------------

_SAME = {  # switches whose either setting hubevo matches without a field
    "--in-memory": "hubevo always merges in memory, into one resident model per process",
    "--reshard": "hubevo reads members as they are and merges in memory: nothing to reshard",
    "--merge-cuda": "hubevo merges on the device it evaluates on",
}
_ONLY_OFF = {  # switches hubevo matches when off, and cannot follow when on
    "--vllm": "hubevo evaluates with lm-eval's HFLM around its resident model, not vLLM",
    "--trust-remote-code": "hubevo merges and evaluates architectures transformers knows, without remote code",
    "--allow-crimes": "hubevo merges only members of one architecture and shape (checked before any weights move)",
    "--load-in-8bit": "hubevo evaluates in the run's dtype (float32, bfloat16 or float16), not quantized",
    "--load-in-4bit": "hubevo evaluates in the run's dtype (float32, bfloat16 or float16), not quantized",
}


def _options(build: _Builder, options: Mapping, *, places: _Places) -> None:
    fevals = options.get("--max-fevals", DEFAULT_MAX_FEVALS)
    note = ("candidates scored; hubevo counts every candidate, the members and standard recipes of generation 0 "
            "included")
    if "--max-fevals" in options:
        build.put("budget.max_evaluations", fevals, source="--max-fevals", note=note)
    else:
        build.derive("budget.max_evaluations", fevals,
                     note=f"--max-fevals not given: mergekit-evolve's default; {note}")
    build.derive("budget.generations", fevals, note="as many as evaluations, so that max_evaluations stops the run")
    simple = {"--random-seed": ("seed", ""), "--sigma0": ("search.options.sigma0", "in [0, 1] coordinates"),
              "--force-population-size": ("search.options.popsize", "candidates per CMA-ES generation"),
              "--batch-size": ("fitness.batch_size", "lm-eval's batch size"),
              "--timeout": ("budget.wall_time_s", "seconds"), "--wandb-project": ("tracking.project", "")}
    for flag, (target, note) in simple.items():
        if options.get(flag) is not None:
            build.put(target, options[flag], source=flag, note=note)
    if options.get("--storage-path"):
        build.put("output.dir", places.option_path(options["--storage-path"]), source="--storage-path",
                  note="the run folder: results.parquet, the survivors, the champion's weights")
    else:
        build.derive("output.dir", f"runs/{build.data['name']}",
                     note="--storage-path not given: a run folder beside this file")
    _execution(build, options)
    _switches(build, options)


def _execution(build: _Builder, options: Mapping) -> None:
    strategy = options.get("--strategy")
    if strategy is not None:
        if strategy not in EVOLVE_STRATEGIES:
            build.problems.append(f"--strategy: {strategy!r}; give one of {', '.join(EVOLVE_STRATEGIES)}")
        build.put("execution.backend", "ray", source="--strategy",
                  note=f"{strategy}: Ray workers, each with its own resident model on its GPU")
    if options.get("--num-gpus") is not None:
        build.put("execution.backend", "ray", source="--num-gpus")
        build.put("execution.workers", options["--num-gpus"], source="--num-gpus", note="one GPU per worker")


def _switches(build: _Builder, options: Mapping) -> None:
    for flag, why in _SAME.items():
        if flag in options:
            build.keep(flag, why)
    for flag, why in _ONLY_OFF.items():
        if options.get(flag):
            build.skip(flag, why)
        elif flag in options:
            build.keep(flag, why)
    if options.get("--wandb"):
        build.put("tracking.to", ["wandb"], source="--wandb")
    elif "--wandb" in options:
        build.keep("--wandb", "no tracker, hubevo's default (tracking.to: [])")
    if options.get("--wandb-entity"):
        build.skip("--wandb-entity", "set WANDB_ENTITY in the environment: wandb reads it")
    if options.get(BENCHMARK_FLAG):
        build.put("fitness.allow_test_sets", True, source=BENCHMARK_FLAG,
                  note="select on well-known benchmark test sets, knowingly")
    if options.get("--save-final-model") is False:
        build.skip("--save-final-model", "--no-save-final-model: hubevo always keeps the champion's full weights "
                                         "in the run folder")
    elif "--save-final-model" in options:
        build.keep("--save-final-model", "hubevo keeps the champion's full weights in output.dir/models")


# the run file ----------------------------------------------------------------------------------------

ADDITIONS = (
    "What hubevo adds to mergekit-evolve's search (each counts towards budget.max_evaluations): the members and "
    "the standard recipes are scored in generation 0 (search.options.evaluate_seeds: false and search.baselines: "
    "[] leave them out), a recipe soup of the best finalists joins each generation (search.options.soup: 0 "
    "leaves it out), and the champion is picked by finals on validation examples no fitness sample holds "
    "(fitness.finalists: 0 picks the best by fitness). `search.options.method: auto` would start CMA-ES at the "
    "best standard recipe instead. `hubevo config --example` lists every field."
)


def render(conversion: Conversion, *, source: str, run_file: str = "run.yaml") -> str:
    """The commented hubevo run file of `conversion`: each field's comment names where it came from."""
    header = [f"# hubevo run file converted from the mergekit-evolve config {source} by `hubevo convert`.",
              f"# Run it: hubevo evolve {run_file}",
              "# Each comment names the mergekit-evolve field or option a value came from; paths are relative "
              "to this file."]
    if conversion.unmapped:
        header.append("# Not mapped (hubevo has no equivalent, so the run differs there):")
        header += [line for key, why in conversion.unmapped.items()
                   for line in comment_lines(f"- {key}: {why}", indent=0)]
    if conversion.same:
        header.append("# Given and needing no field (hubevo does the same):")
        header += [line for key, why in conversion.same.items() for line in comment_lines(f"- {key}: {why}", indent=0)]
    body = []
    for key, value in conversion.data.items():
        body += commented_yaml({key: value}, notes=conversion.notes) + [""]
    return "\n".join([*header, "", *body, *comment_lines(ADDITIONS, indent=0)]) + "\n"
