"""Stage 6, publish: the results table, the lineage graph and the terminal's leaderboard.

`write_tables` writes `results.parquet` (one row per candidate: genes, scores, survival, the Pareto
front, an m2n2 archive model's niche, the estimator of an estimated fitness), `outcomes.parquet` (every
per-example outcome scored), `lineage.json` (the family tree the Space draws), `champion.json` (the
recorded decision) and, at the end of a run, the Pareto plot. The cards are `hubevo.publish.cards`; the Hub push is
`hubevo.publish.hub`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from hubevo.breed.genome import Individual
from hubevo.fsio import atomic_write_bytes, atomic_write_text
from hubevo.publish.cards import mean_score, mutation_record, niche_texts
from hubevo.publish.decision import DECISION_FILE, decision_record
from hubevo.publish.front import plot_front, run_front
from hubevo.selection import ranking
from hubevo.state.runstate import RunState

OUTCOMES_FILE = "outcomes.parquet"  # per-example outcomes, beside results.parquet


def results_frame(state: RunState, *, recipes: bool = True) -> pd.DataFrame:
    """One row per evaluated candidate: the table the leaderboard and the Hub results dataset hold.

    `recipes=False` leaves the `recipe` column empty (a viewer renders one from `state.recipes` when asked)."""
    rows, front, champion = [], run_front(state), state.champion()
    reigns, survivors, niche = champion_reigns(state), survivor_ids(state), niche_texts(state)
    for ev in state.evaluations.values():
        ind = state.individuals[ev.id]
        g = ind.genome
        rows.append({
            "generation": ind.generation,
            "evaluated_in": ev.generation,
            "id": ind.id,
            "model": ind.name,
            "kind": ind.kind,
            "method": ind.finetune.operator if ind.finetune else getattr(g, "method", "seed"),
            "parents": [state.individuals[p].name for p in ind.parents],
            "genes": genes_text(ind),
            "mutation": json.dumps(mutation_record(ind, state.training.get(ind.id))) if ind.finetune else None,
            "recipe": recipe_text(state.recipes[ind.id]) if recipes and ind.id in state.recipes else None,
            "status": ev.status,
            "reason": ev.reason,
            "baseline": state.baselines.get(ev.id),
            "fitness": ev.fitness,
            "fitness_stderr": ev.stderr,
            "estimate": ev.estimate,  # the fitness estimator's kind when `fitness` is an estimate (cheap fitness)
            "validation": state.validation[ev.id].fitness if ev.id in state.validation else None,
            "validation_stderr": state.validation[ev.id].stderr if ev.id in state.validation else None,
            **{f"fitness/{k}": v for k, v in ev.scores.items()},
            **{f"heldout/{k}": v for k, v in state.heldout.get(ev.id, {}).items()},
            "heldout": mean_score(state.heldout.get(ev.id)),
            "examples": ev.examples,
            "seconds": ev.seconds,
            "survivor": ev.id in survivors,
            "pareto": ev.id in front,
            "niche": niche.get(ev.id),
            "champion": ev.id == champion,
            "champion_in": reigns.get(ev.id, []),
            "path": state.saved.get(ev.id),
        })
    return pd.DataFrame(rows)


def survivor_ids(state: RunState) -> set[str]:
    """Everyone who survived some generation (one set, not a scan of every generation per row)."""
    return {cid for ids in state.survivors.values() for cid in ids}


_GENES_TEXTS: dict[str, str] = {}  # an id is its genome's hash, so its genes never change


def genes_text(individual: Individual) -> str:
    """An individual's genes as the results table stores them (JSON), dumped once per id in this process."""
    text = _GENES_TEXTS.get(individual.id)
    if text is None:
        if len(_GENES_TEXTS) >= 200_000:
            _GENES_TEXTS.clear()
        genome = individual.genome
        text = _GENES_TEXTS[individual.id] = json.dumps(genome.genes() if genome else {})
    return text


_RECIPE_TEXTS: dict[str, str] = {}  # a recipe never changes: the Space rebuilds a live run's table from memory


def recipe_text(recipe: Mapping) -> str:
    """A recipe as the results table stores it (YAML), dumped once per distinct recipe in this process."""
    key = json.dumps(recipe, default=str)
    text = _RECIPE_TEXTS.get(key)
    if text is None:
        if len(_RECIPE_TEXTS) >= 200_000:
            _RECIPE_TEXTS.clear()
        text = _RECIPE_TEXTS[key] = yaml.dump(recipe, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                                             sort_keys=False)
    return text


def champion_reigns(state: RunState) -> dict[str, list[int]]:
    """Individual id -> the finished generations after which it was the champion."""
    reigns: dict[str, list[int]] = {}
    champions = ranking.champions_upto(state.evaluations.values(), state.survivors, validation=state.validation,
                                       incumbents={*state.initial, *state.baselines})
    for generation, cid in champions.items():
        if cid is not None:
            reigns.setdefault(cid, []).append(generation)
    return reigns


def lineage_graph(state: RunState) -> dict:
    """Node-link JSON of the family tree (networkx's format); edges carry the parent's role and merge weight,
    data-flow children the parent of each layer of their path."""
    nodes = [
        {"id": i.id, "name": i.name, "kind": i.kind, "generation": i.generation, "source": i.source,
         "revision": i.revision,
         "method": i.finetune.operator if i.finetune else getattr(i.genome, "method", None),
         "fitness": state.evaluations[i.id].fitness if i.id in state.evaluations else None}
        | ({"layers": [step.parent for step in i.genome.path]} if hasattr(i.genome, "path") else {})
        for i in state.individuals.values()
    ]
    edges = [edge for i in state.individuals.values() for edge in child_edges(i)]
    return {"directed": True, "multigraph": False, "graph": {}, "nodes": nodes, "edges": edges}


def parent_weights(individual: Individual) -> dict[str, float]:
    """Each merge parent's weight: its `weight` gene (averaged over layer blocks), or slerp's 1 - t and t."""
    genome = individual.genome
    if genome is None or not hasattr(genome, "per_parent"):
        return {}
    if genome.method == "slerp" and "t" in genome.shared and len(genome.parents) == 2:
        t = float(genome.shared["t"])
        return {genome.parents[0]: 1 - t, genome.parents[1]: t}
    tables = [genome.per_parent] + [block.per_parent for block in genome.blocks if block.module is None]
    weights: dict[str, list[float]] = {}
    for table in tables:
        for pid, genes in zip(genome.parents, table, strict=False):
            if "weight" in genes:
                weights.setdefault(pid, []).append(float(genes["weight"]))
    return {pid: sum(values) / len(values) for pid, values in weights.items()}


def child_edges(individual: Individual) -> list[dict]:
    """The lineage edges into `individual`, one per parent (`edge_genes`), its weights worked out once."""
    weights = parent_weights(individual) if individual.parents else {}
    return [{"source": p, "target": individual.id, **edge_genes(individual, p, weights=weights)}
            for p in individual.parents]


def edge_genes(individual: Individual, parent: str, *, weights: Mapping[str, float]) -> dict:
    """What the lineage edge parent -> child carries: its role (parent or base) and the parent's weight
    (`weights`: the child's `parent_weights`)."""
    genome = individual.genome
    role = "base" if genome is not None and parent == genome.base and parent not in genome.parents else "parent"
    weight = weights.get(parent)
    return {"role": role, **({"weight": round(weight, 4)} if weight is not None else {})}


def outcomes_frame(state: RunState) -> pd.DataFrame:
    """Every per-example outcome the run scored, one row per candidate, scoring, task and document (as lm-eval's
    `--log_samples` keeps them): `scoring` is `fitness` (its estimate kind, if any, in `estimate`) or `validation`."""
    rows = []
    for scoring, evaluations in (("fitness", [*state.rescored, *state.evaluations.values()]),
                                 ("validation", state.validation.values())):
        for ev in evaluations:
            for task, outcome in ev.outcomes.items():
                docs = outcome.docs if outcome.docs is not None else list(range(len(outcome.values)))
                rows += [{"id": ev.id, "model": state.individuals[ev.id].name, "evaluated_in": ev.generation,
                          "scoring": scoring, "estimate": ev.estimate, "task": task, "doc": int(d),
                          "value": float(v)} for d, v in zip(docs, outcome.values, strict=True)]
    columns = ["id", "model", "evaluated_in", "scoring", "estimate", "task", "doc", "value"]
    return pd.DataFrame(rows, columns=columns).drop_duplicates(["id", "scoring", "task", "doc"], keep="last")


def write_tables(state: RunState, run_dir: Path) -> None:
    frame = results_frame(state)
    atomic_write_bytes(run_dir / "results.parquet", frame.to_parquet(index=False))
    atomic_write_bytes(run_dir / OUTCOMES_FILE, outcomes_frame(state).to_parquet(index=False))
    if state.finished:
        plot_front(frame, run_dir / "pareto.png")
    atomic_write_text(run_dir / "lineage.json", json.dumps(lineage_graph(state), indent=1))
    atomic_write_text(run_dir / DECISION_FILE, json.dumps(decision_record(state), indent=1))


def ranked_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows best first by `hubevo.selection.ranking.rank_key`; rows without a fitness last, in table order."""
    scored = frame[frame["fitness"].notna() & (frame["status"] == "ok")]
    order = sorted(scored.index, key=lambda i: ranking.rank_key(
        frame.at[i, "fitness"], frame.at[i, "evaluated_in"], frame.at[i, "id"]))
    return frame.loc[order + [i for i in frame.index if i not in set(order)]]


def leaderboard(state: RunState, *, top: int | None = None) -> str:
    frame = results_frame(state)
    if frame.empty:
        return "(no candidates evaluated)"
    frame = ranked_frame(frame)
    frame = pd.concat([frame[frame["champion"]], frame[~frame["champion"]]])  # the one champion heads the table
    frame["parents"] = frame["parents"].map(lambda ps: "+".join(ps) if len(ps) else "-")
    frame[""] = frame["champion"].map(lambda c: "<- champion" if c else "")
    cols = ["generation", "model", "parents", "method", "fitness", "heldout", "status", ""]
    shown = (frame[cols].head(top) if top else frame[cols]).copy()
    shown["heldout"] = pd.to_numeric(shown["heldout"])  # a run without held-out tasks: all missing, shown "-"
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
