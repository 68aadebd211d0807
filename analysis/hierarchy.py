"""The verdict table's multiplicity rule: pooled rows first, a scope's own row only under its pooled row.

A graphical multiple-test procedure (Bretz, Maurer, Brannath and Posch, *Statistics in Medicine*
28:586, 2009) with the shape of a gatekeeping tree: each primary row (pooled over masks or
networks, or a row with nothing pooled above it) starts with an equal share of `alpha`; a
primary row that is rejected passes its share to its per-scope rows (the ones it pools), which
are tested only then; a rejected per-scope row passes its share to its siblings, and the last of
them back to the other primary rows (through ε-edges, so no share is lost). This controls the
chance of any false "holds" in the table at `alpha` (strong familywise control, as Holm does),
while a real pooled effect is not diluted by the many per-scope rows of a finding that holds or
fails as a whole. `adjusted` gives each row the smallest `alpha` at which it would be rejected.
"""

import numpy as np

EPSILON = 1e-6  # weight of the edges that carry a finished tree's share back to the other primary rows


def adjusted(p_values: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Adjusted p-values of the graphical procedure above (NaN stays NaN).

    `parents[i]` is the index of row i's primary row, or -1 when row i is primary itself. Rows
    whose p-value is NaN take no part; a row whose parent takes no part is primary.
    """
    p = np.asarray(p_values, dtype=float)
    parents = np.asarray(parents, dtype=int)
    out = np.full_like(p, np.nan)
    nodes = np.flatnonzero(np.isfinite(p))
    if not len(nodes):
        return out
    position = {node: i for i, node in enumerate(nodes)}
    parent = np.array([position.get(parents[node], -1) for node in nodes])
    weights, graph = _tree(parent)
    active = np.ones(len(nodes), bool)
    largest = 0.0
    for _ in range(len(nodes)):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(active & (weights > 0), p[nodes] / weights, np.inf)
        j = int(np.argmin(ratio))
        if not np.isfinite(ratio[j]):  # the rest has no weight left: never rejected
            out[nodes[active]] = 1.0
            break
        largest = max(largest, min(1.0, ratio[j]))
        out[nodes[j]] = largest
        active[j] = False
        weights, graph = _reject(j, weights, graph, active)
    return out


def _tree(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Initial weights and transition matrix of the gatekeeping tree (see the module docstring)."""
    n = len(parent)
    primary = parent < 0
    weights = np.where(primary, 1.0 / primary.sum(), 0.0)
    graph = np.zeros((n, n))
    for i in range(n):
        others = np.flatnonzero(primary & (np.arange(n) != i))
        near = np.flatnonzero(parent == i) if primary[i] else np.flatnonzero((parent == parent[i]) & (np.arange(n) != i))
        if len(near) and len(others):
            graph[i, near] = (1 - EPSILON) / len(near)
            graph[i, others] = EPSILON / len(others)
        elif len(near):
            graph[i, near] = 1.0 / len(near)
        elif len(others):
            graph[i, others] = 1.0 / len(others)
    return weights, graph


def _reject(j: int, weights: np.ndarray, graph: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bretz et al.'s update after rejecting node j: its weight and edges pass on to the active nodes."""
    weights = np.where(active, weights + weights[j] * graph[j], 0.0)
    through = np.outer(graph[:, j], graph[j])  # G_lj · G_jk
    with np.errstate(divide="ignore", invalid="ignore"):
        loop = 1 - graph[:, j] * graph[j]  # 1 − G_lj · G_jl
        updated = np.where(loop[:, None] > 0, (graph + through) / loop[:, None], 0.0)
    np.fill_diagonal(updated, 0.0)
    updated[~active] = 0.0
    updated[:, ~active] = 0.0
    return weights, updated
