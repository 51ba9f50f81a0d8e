"""Stage 6 at the Hub edge: the license a child may carry, derived from its parents' licenses.

A merge or fine-tune of several models is bound by all their licenses, so the child takes
the most restrictive one that every parent allows:

- permissive licenses rank mit / bsd < cc-by < apache-2.0 (patent terms); the strictest wins;
- any non-commercial parent makes the child non-commercial (cc-by-nc-4.0 + apache-2.0 ->
  cc-by-nc-4.0);
- a share-alike or custom license (gpl, cc-by-sa, llama, gemma, openrail...) passes on as
  it is; two different ones conflict, and so does one without a non-commercial form next to
  a non-commercial parent (gpl-3.0 + cc-by-nc-4.0);
- a no-derivatives parent (cc-by-nd, cc-by-nc-nd), an unknown license or none at all is refused.

Every refusal is a `LicenseError` naming each parent and its license; an explicit override
(`publish.license`, passed in as `override`) replaces the derivation when the publisher has
the right to choose. Gated parents are listed so the card can name them. Licenses are read
from the parents' card metadata: `model_info(...).card_data` for Hub repos, the YAML header
of `README.md` for local folders. `derive` and `lineage_licenses` are pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hubevo.errors import ConfigError
from hubevo.hub.client import ensure_api, hub_call, retried
from hubevo.hub.download import split_revision
from hubevo.registry import Registry


class LicenseError(ConfigError):
    """The parents' licenses do not allow a child license (conflict, unknown, no derivatives)."""


@dataclass(frozen=True)
class Terms:
    rank: int  # strictness among licenses that combine; the highest wins
    sticky: bool = False  # share-alike or custom: the child must keep exactly this license
    noncommercial: bool = False
    derivatives: bool = True


PERMISSIVE = {"unlicense": 0, "cc0-1.0": 0, "mit": 1, "bsd-2-clause": 1, "bsd-3-clause": 1, "isc": 1,
              "cc-by-4.0": 2, "cc-by-3.0": 2, "apache-2.0": 3}
TERMS = Registry("license", {
    **{name: Terms(rank) for name, rank in PERMISSIVE.items()},
    "cc-by-nc-4.0": Terms(4, noncommercial=True),
    "cc-by-nc-3.0": Terms(4, noncommercial=True),
    "cc-by-nc-sa-4.0": Terms(5, sticky=True, noncommercial=True),
    "cc-by-sa-4.0": Terms(5, sticky=True),
    "gpl-3.0": Terms(5, sticky=True),
    "agpl-3.0": Terms(5, sticky=True),
    "lgpl-3.0": Terms(5, sticky=True),
    "cc-by-nd-4.0": Terms(6, derivatives=False),
    "cc-by-nc-nd-4.0": Terms(6, noncommercial=True, derivatives=False),
    **{name: Terms(5, sticky=True) for name in (
        "openrail", "openrail++", "creativeml-openrail-m", "bigscience-openrail-m", "bigcode-openrail-m",
        "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma")},
})


@dataclass(frozen=True)
class ParentLicense:
    """What a parent's card says: its name (repo id or folder), license and whether it is gated."""

    name: str
    license: str | None
    gated: bool = False


@dataclass(frozen=True)
class Derived:
    license: str
    gated: tuple[str, ...] = ()  # parents (transitively) behind a gate: named on the child's card
    overridden: bool = False


def derive(parents: list[ParentLicense], *, override: str | None = None) -> Derived:
    """The child's license from its parents' (see the module docstring); LicenseError when none is allowed."""
    gated = tuple(p.name for p in parents if p.gated)
    if override:
        return Derived(override, gated, overridden=True)
    if not parents:
        raise LicenseError("cannot derive a license for a child without parents; set publish.license")
    return Derived(_combine(parents), gated)


def _combine(parents: list[ParentLicense]) -> str:
    listing = ", ".join(f"{p.name} ({p.license or 'no license'})" for p in parents)
    hint = "; set publish.license to a license you have the right to use for the child"
    unknown = [p for p in parents if (p.license or "").lower() not in TERMS]
    if unknown:
        names = ", ".join(f"{p.name} ({p.license or 'no license'})" for p in unknown)
        raise LicenseError(f"unknown or missing license of parent(s) {names} among {listing}{hint}")
    terms = {p.license.lower(): TERMS[p.license.lower()] for p in parents}
    if no_derivatives := [name for name, t in terms.items() if not t.derivatives]:
        raise LicenseError(f"license {', '.join(no_derivatives)} forbids derivatives (merges, fine-tunes): {listing}{hint}")
    sticky = sorted(name for name, t in terms.items() if t.sticky)
    if len(sticky) > 1:
        raise LicenseError(f"conflicting licenses {' and '.join(sticky)}: each requires the child to keep it "
                           f"({listing}){hint}")
    child = max(terms, key=lambda name: (terms[name].rank, name))
    if any(t.noncommercial for t in terms.values()) and not terms[child].noncommercial:
        noncommercial = ", ".join(name for name, t in terms.items() if t.noncommercial)
        raise LicenseError(f"conflicting licenses: the child must stay non-commercial ({noncommercial}) but must "
                           f"also keep {child}, which has no non-commercial form ({listing}){hint}")
    return child


def lineage_licenses(
    parents_of: Mapping[str, list[str]], seeds: Mapping[str, ParentLicense], *, names: Mapping[str, str],
    override: str | None = None,
) -> dict[str, Derived]:
    """Every descendant's license, deriving children from parents first (seeds keep their own).

    `parents_of` maps each bred individual id to its parent ids, `names` any id to the name a
    card shows; an override licenses every child the same.
    """
    done: dict[str, ParentLicense] = dict(seeds)
    out: dict[str, Derived] = {}

    def visit(cid: str) -> ParentLicense:
        if cid in done:
            return done[cid]
        if cid not in parents_of:
            raise LicenseError(f"no license is known for {names.get(cid, cid)!r}: it is neither a seed nor bred")
        derived = derive([visit(p) for p in parents_of[cid]], override=override)
        inherited = [g for p in parents_of[cid] if p in out for g in out[p].gated]
        out[cid] = Derived(derived.license, tuple(dict.fromkeys([*derived.gated, *inherited])), derived.overridden)
        done[cid] = ParentLicense(names.get(cid, cid), derived.license)
        return done[cid]

    for cid in parents_of:
        visit(cid)
    return out


# reading parents' licenses ----------------------------------------------------------------------
def hub_license(repo: str, *, api=None) -> ParentLicense:
    """The license and gating of a Hub model `org/name[@revision]`, from its card metadata."""
    api = ensure_api(api)
    repo_id, revision = split_revision(repo)
    with hub_call(repo_id, action="read the license of", api=api):
        info = retried(lambda: api.model_info(repo_id, revision=revision), what=f"model_info({repo_id!r})")
    card = info.card_data.to_dict() if info.card_data is not None else {}
    return ParentLicense(repo_id, _license_of(card), gated=bool(info.gated))


def local_license(folder: str | Path) -> ParentLicense:
    """The license in the YAML header of a local model folder's README.md (None without one)."""
    from huggingface_hub.repocard import metadata_load

    readme = Path(folder) / "README.md"
    card = (metadata_load(readme) or {}) if readme.is_file() else {}
    return ParentLicense(Path(folder).name, _license_of(card))


def _license_of(card: dict) -> str | None:
    """`license`, or for `license: other` its `license_name` (a custom license the table may know)."""
    value = card.get("license")
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if value == "other" and card.get("license_name"):
        value = card["license_name"]
    return str(value).lower() if value else None


def card_metadata(derived: Derived, *, superseded_by: str | None = None) -> dict:
    """Card metadata fields for a child: `license`, and `new_version` when a newer champion replaced it."""
    data: dict = {"license": derived.license}
    if superseded_by:
        data["new_version"] = superseded_by
    return data


def gated_note(derived: Derived) -> str:
    """A card paragraph naming gated ancestors ('' if none): users must accept their terms too."""
    if not derived.gated:
        return ""
    names = ", ".join(f"`{name}`" for name in derived.gated)
    return (f"\n**Gated parents:** {names}. Their terms apply to this model as well; "
            "accept them on each parent's page before use.\n")
