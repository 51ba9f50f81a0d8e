"""Merge-method table for crossover, read from mergekit's own registry.

Which parameters are genes, whether a method needs a base model and how many
parents it takes all come from each method's `MergeMethodSpec`, so hubevo follows
mergekit instead of restating it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from hubevo.registry import Registry, unknown_name

# mergekit 0.1.5's registered methods, so a config names a bad method without importing mergekit
# (and torch); tests/config/test_config.py checks this list against mergekit's registry.
METHOD_NAMES = (
    "arcee_fusion", "breadcrumbs", "breadcrumbs_ties", "dare_linear", "dare_ties", "della", "della_linear",
    "karcher", "linear", "model_stock", "multislerp", "nearswap", "nuslerp", "passthrough", "ram", "ramplus_tl",
    "sce", "slerp", "task_arithmetic", "ties",
)


@dataclass(frozen=True)
class MethodInfo:
    name: str
    shared_genes: tuple[str, ...]  # one value for the whole merge (t, lambda)
    input_genes: tuple[str, ...]  # one value per parent (weight, density, epsilon, gamma)
    base: str  # "required" | "optional" | "ignored"
    min_parents: int
    max_parents: int | None

    @property
    def needs_base(self) -> bool:
        return self.base == "required"

    def accepts(self, n_parents: int) -> bool:
        return n_parents >= self.min_parents and (self.max_parents is None or n_parents <= self.max_parents)


def _float_params(spec, scopes) -> tuple[str, ...]:
    return tuple(p.name for p in spec.parameters if p.value_type is float and p.scope in scopes and p.name != "eps")


def _input_genes(method, spec) -> tuple[str, ...]:
    """Per-parent genes the method reads: mergekit's task-arithmetic family declares `density` on every
    method but reads it only when it sparsifies (TIES, DARE, ...), so plain task arithmetic has none."""
    from mergekit.merge_methods.base import ParameterScope

    genes = _float_params(spec, {ParameterScope.INPUT, ParameterScope.NON_BASE})
    if getattr(method, "sparsification_method", "n/a") is None:
        return tuple(g for g in genes if g != "density")
    return genes


def _parent_bounds(spec) -> tuple[int, int | None]:
    """Parent counts excluding the base model, from mergekit's input contract."""
    from mergekit.merge_methods.base import BasePolicy

    contract = spec.contract
    if contract.base == BasePolicy.REQUIRED:
        low = max(1, (contract.min_inputs or 1) - 1)
        high = None if contract.max_inputs is None else contract.max_inputs - 1
        if spec.name == "slerp":  # slerp interpolates base -> other: two parents, the first is the base
            return 2, 2
        return low, high
    low = max(contract.min_inputs or 1, contract.min_non_base or 1)
    return low, contract.max_non_base if contract.max_non_base is not None else contract.max_inputs


@cache
def method_table() -> Registry[MethodInfo]:
    from mergekit.merge_methods import registry
    from mergekit.merge_methods.base import ParameterScope

    table = Registry("merge method")
    for method in registry.registered_methods():
        spec = method.spec
        low, high = _parent_bounds(spec)
        base = "ignored" if spec.name == "slerp" else spec.contract.base.value
        table[spec.name] = MethodInfo(
            name=spec.name,
            shared_genes=_float_params(spec, {ParameterScope.SHARED}),
            input_genes=_input_genes(method, spec),
            base=base,
            min_parents=low,
            max_parents=high,
        )
    return table


def unknown_method_message(name: str) -> str | None:
    """Why `name` is not a merge method (with close matches), or None; never imports mergekit."""
    return None if name in METHOD_NAMES else unknown_name("merge method", name, METHOD_NAMES)


def get_method(name: str) -> MethodInfo:
    return method_table()[name]
