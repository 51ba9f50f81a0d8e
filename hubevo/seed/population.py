"""Stage 1, seed: the population a run starts from, resolved to local folders and checked mergeable.

Members (and the candidates of a Hub query) are resolved, then checked against each other from
`config.json` and the tokenizer alone, then their weights are checked (`hubevo.seed.weights`), and each is
checked complete and distinct from the others (`hubevo.seed.complete`), all before any merge: an incompatible,
broken, incomplete or repeated member fails with the members named.
"""

from __future__ import annotations

from hubevo.config import PopulationConfig
from hubevo.errors import ConfigError
from hubevo.seed.complete import check_distinct_folders, check_distinct_weights, check_tokenizer
from hubevo.seed.members import ResolvedMember, check_compatible, resolve
from hubevo.seed.weights import check_weights


def seed_population(cfg: PopulationConfig, *, api=None) -> tuple[list[ResolvedMember], ResolvedMember | None]:
    """Resolve members (and Hub-query candidates) to local folders; fail before any merge if incompatible."""
    base = resolve(cfg.base_model, api=api, field="population.base_model") if cfg.base_model else None
    members = [resolve(m, api=api, field=f"population.members.{i}") for i, m in enumerate(cfg.members)]
    if cfg.query is not None:
        from hubevo.seed.discover import discover_members

        reference = (members[0] if members else base)
        given = [m.source for m in members] + ([base.source] if base else [])
        found = discover_members(cfg.query, reference=reference, api=api, exclude=given)
        members += [resolve(m, api=api, field="population.query") for m in found]
    if not members:
        raise ConfigError("population is empty: no member given and the Hub query found no compatible model")
    seeds = [(seed_field(i, given=len(cfg.members)), m) for i, m in enumerate(members)]
    seeds += [("population.base_model", base)] if base else []
    check_distinct_folders(seeds)
    labels = [m.label for m in members]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise ConfigError(f"population.members has duplicate names {duplicates}; set a distinct 'name' on each")
    check_compatible(members + ([base] if base else []))
    for field, member in seeds:
        check_tokenizer(member, field=field)
        check_weights(member)
    check_distinct_weights(seeds)
    return members, base


def seed_field(index: int, *, given: int) -> str:
    """The config field that named the `index`-th member: one of population.members, or the Hub query."""
    return f"population.members.{index}" if index < given else "population.query"
