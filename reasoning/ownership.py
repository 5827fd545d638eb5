"""Beneficial ownership: effective shares over all ownership paths, cross-holdings included.

With S the share-fraction matrix (S[h, c] = fraction of c held directly by h), the effective
share E[x, c] sums the product of fractions over every path from x to c:
E = S + S·S + S·S·S + ... For natural persons, who are never held, this is
E_p = S_p + E_p·S_cc, i.e. E_p = S_p·(I − S_cc)⁻¹ with S_p the person→company rows and S_cc
the company→company block. Cycles of cross-holdings make the series infinite but the linear
system finite; it is solved once with a sparse LU factorisation of (I − S_cc)ᵀ.

Holdings are mostly layered (a company's holders are held by others, rarely in return), so
the system is solved company by company in topological order of the holding graph: once the
effective shares in every company holding C are known, those in C follow by one sparse
product, and a level of the graph at a time is one product. Cross-holdings (strongly
connected companies, which share a level) need a solve: a small dense inverse per group.

Where a group of cross-held companies is too large for that, the general solve runs: the
system is block diagonal over the connected components of the holding graph, so persons of
different components can share one right-hand-side column. Column j holds, for every
component at once, that component's j-th person; the number of columns is the largest number
of persons in one component, not the number of persons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

UBO_THRESHOLD = 0.25
_EPS = 1e-12
_MAX_COLUMNS = 256  # right-hand-side columns solved at once (bounds dense memory)
# Dense right-hand sides above this many entries (one giant component of holdings) switch
# to the sparse series below.
_DENSE_BUDGET = 20_000_000
_MAX_TERMS = 10_000
# Largest group of cross-held companies inverted densely by the level-by-level solve.
_MAX_CYCLE = 500
_PACKABLE = 1 << 31  # node ids below this pack two to an int64


@dataclass(frozen=True, slots=True)
class EffectiveOwnership:
    """Effective share (fraction 0..1) of each natural person in each company it reaches."""

    person: IntArray
    company: IntArray
    share: FloatArray


def effective_ownership(
    holder: npt.ArrayLike,
    company: npt.ArrayLike,
    fraction: npt.ArrayLike,
    is_person: npt.ArrayLike,
) -> EffectiveOwnership:
    """Effective shares of natural persons in companies.

    Args:
        holder: holder node id of each holding (person or company).
        company: held company node id of each holding.
        fraction: share fraction of each holding, 0..1 (parallel holdings are summed).
        is_person: node ids of natural persons; all other holders are companies.

    Example:
        >>> e = effective_ownership([0, 1, 2], [1, 2, 3], [0.6, 0.55, 0.3], [0])
        >>> [round(float(s), 4) for s in e.share]
        [0.6, 0.33, 0.099]
    """
    h = np.asarray(holder, np.int64)
    c = np.asarray(company, np.int64)
    f = np.asarray(fraction, np.float64)
    empty = EffectiveOwnership(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    if len(h) == 0:
        return empty
    person_holding = _members(h, np.asarray(is_person, np.int64))
    # dense local numbering: companies (anything held, or holding without being a person)
    comp_ids = np.unique(np.concatenate([c, h[~person_holding]]))
    pers_ids = np.unique(h[person_holding])
    nc, npers = len(comp_ids), len(pers_ids)
    ci = np.searchsorted(comp_ids, c)
    s_cc = sp.csr_matrix(
        (f[~person_holding], (np.searchsorted(comp_ids, h[~person_holding]), ci[~person_holding])),
        shape=(nc, nc),
    )
    s_p = sp.csr_matrix(
        (f[person_holding], (np.searchsorted(pers_ids, h[person_holding]), ci[person_holding])),
        shape=(npers, nc),
    )
    if npers == 0:
        return empty
    _, scc = connected_components(s_cc, directed=True, connection="strong")
    if np.bincount(scc).max() <= _MAX_CYCLE:
        return _by_levels(s_p, s_cc, scc, pers_ids, comp_ids)
    # components of the undirected holding graph over companies + persons
    adj = sp.bmat([[s_cc, s_p.T], [s_p, None]], format="csr")
    adj = (adj + adj.T).tocsr()
    _, label = connected_components(adj, directed=False)
    comp_label, pers_label = label[:nc], label[nc:]
    order = np.argsort(pers_label, kind="stable")
    sorted_labels = pers_label[order]
    first = np.searchsorted(sorted_labels, sorted_labels, "left")
    slot = np.empty(npers, np.int64)
    slot[order] = np.arange(npers) - first
    # (component, slot) -> person
    n_labels = int(label.max()) + 1
    n_slots = int(slot.max()) + 1
    lookup = np.full((n_labels, n_slots), -1, np.int64) if n_labels * n_slots < 5e7 else None
    if nc * n_slots > _DENSE_BUDGET:
        return _neumann(s_p, s_cc, pers_ids, comp_ids)

    system = (sp.identity(nc, format="csc") - s_cc.T.tocsc()).tocsc()
    lu = splu(system)
    s_p_t = s_p.T.tocsr()  # nc x npers
    out_p: list[IntArray] = []
    out_c: list[IntArray] = []
    out_s: list[FloatArray] = []
    for start in range(0, n_slots, _MAX_COLUMNS):
        stop = min(start + _MAX_COLUMNS, n_slots)
        in_block = (slot >= start) & (slot < stop)
        cols_persons = np.flatnonzero(in_block)
        # right-hand side: column (slot - start) gets person p's holdings
        sel = s_p_t[:, cols_persons].tocoo()
        rhs = np.zeros((nc, stop - start))
        np.add.at(rhs, (sel.row, slot[cols_persons[sel.col]] - start), sel.data)
        solved = lu.solve(rhs)
        rows, cols = np.nonzero(np.abs(solved) > _EPS)
        comp_of_row = comp_label[rows]
        if lookup is not None:
            lookup[pers_label[cols_persons], slot[cols_persons]] = cols_persons
            person_local = lookup[comp_of_row, cols + start]
        else:
            key = pers_label[cols_persons] * n_slots + slot[cols_persons]
            korder = np.argsort(key)
            pos = np.searchsorted(key[korder], comp_of_row * n_slots + cols + start)
            pos = np.minimum(pos, len(korder) - 1)
            hit = key[korder][pos] == comp_of_row * n_slots + cols + start
            person_local = np.where(hit, cols_persons[korder][pos], -1)
        ok = person_local >= 0
        out_p.append(pers_ids[person_local[ok]])
        out_c.append(comp_ids[rows[ok]])
        out_s.append(solved[rows[ok], cols[ok]])
    person = np.concatenate(out_p)
    comp = np.concatenate(out_c)
    share = np.concatenate(out_s)
    order2 = np.lexsort((comp, person))
    return EffectiveOwnership(person[order2], comp[order2], share[order2])


def _by_levels(
    s_p: sp.csr_matrix, s_cc: sp.csr_matrix, scc: IntArray, pers_ids: IntArray, comp_ids: IntArray
) -> EffectiveOwnership:
    """E_p = S_p + E_p·S_cc level by level of the condensation of the company graph (`scc`:
    strongly connected group of each company): the columns of a level depend only on those
    of earlier levels and, through cross-holdings, on each other."""
    nc = s_cc.shape[0]
    cc = s_cc.tocoo()
    a, b = scc[cc.row], scc[cc.col]
    across = a != b
    level = np.zeros(int(scc.max()) + 1, np.int64)
    while True:  # longest path in the condensation: as many rounds as the graph is deep
        nxt = level.copy()
        np.maximum.at(nxt, b[across], level[a[across]] + 1)
        if np.array_equal(nxt, level):
            break
        level = nxt
    comp_level = level[scc]
    order = np.argsort(comp_level, kind="stable")
    position = np.empty(nc, np.int64)
    position[order] = np.arange(nc, dtype=np.int64)
    s = sp.csc_matrix((cc.data, (position[cc.row], position[cc.col])), shape=(nc, nc))
    ps = s_p.tocoo()
    rhs = sp.csc_matrix((ps.data, (ps.row, position[ps.col])), shape=s_p.shape)
    bounds = np.searchsorted(comp_level[order], np.arange(int(level.max()) + 2))
    done: sp.csc_matrix | None = None  # E over the columns of the levels so far
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if lo == hi:
            continue
        block = rhs[:, lo:hi]
        if done is not None:
            block = block + done @ s[:lo, lo:hi]
        inner = s[lo:hi, lo:hi]
        if inner.nnz:
            block = block @ _cycles_inverse(inner, scc[order[lo:hi]])
        block = sp.csc_matrix(block)
        block.data[np.abs(block.data) <= _EPS] = 0.0
        block.eliminate_zeros()
        done = block if done is None else sp.hstack([done, block], format="csc")
    assert done is not None
    e = done.tocoo()
    person, company, share = pers_ids[e.row], comp_ids[order[e.col]], e.data
    keep = np.lexsort((company, person))
    return EffectiveOwnership(person[keep], company[keep], share[keep])


def _cycles_inverse(inner: sp.csc_matrix, group: IntArray) -> sp.csr_matrix:
    """(I − B)⁻¹ where B holds only holdings within groups of cross-held companies (`group`
    of each column): block diagonal, one dense block per group, inverted in batches of
    groups of equal size."""
    m = inner.shape[0]
    coo = inner.tocoo()
    cyclic = np.unique(group[coo.row])
    involved = np.isin(group, cyclic)
    rows = [np.flatnonzero(~involved)]
    cols = [rows[0]]
    vals = [np.ones(len(rows[0]))]
    members = np.flatnonzero(involved)
    members = members[np.argsort(group[members], kind="stable")]
    labels, start, size = np.unique(group[members], return_index=True, return_counts=True)
    rank = np.empty(m, np.int64)  # index of a column inside its group
    rank[members] = np.arange(len(members)) - np.repeat(start, size)
    which = np.empty(m, np.int64)  # index of a column's group among `labels`
    which[members] = np.repeat(np.arange(len(labels)), size)
    for n in np.unique(size).tolist():
        groups = np.flatnonzero(size == n)
        slot = np.full(len(labels), -1, np.int64)
        slot[groups] = np.arange(len(groups))
        dense = np.broadcast_to(np.eye(n), (len(groups), n, n)).copy()
        mine = slot[which[coo.row]] >= 0
        np.add.at(
            dense,
            (slot[which[coo.row[mine]]], rank[coo.row[mine]], rank[coo.col[mine]]),
            -coo.data[mine],
        )
        inv = np.linalg.inv(dense)
        cols_of = members[
            (np.repeat(start[groups], n) + np.tile(np.arange(n), len(groups))).astype(np.int64)
        ].reshape(len(groups), n)
        r = np.broadcast_to(cols_of[:, :, None], inv.shape)
        c = np.broadcast_to(cols_of[:, None, :], inv.shape)
        rows.append(r.ravel())
        cols.append(c.ravel())
        vals.append(np.asarray(inv.ravel(), np.float64))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m)
    )


def _neumann(
    s_p: sp.csr_matrix, s_cc: sp.csr_matrix, pers_ids: IntArray, comp_ids: IntArray
) -> EffectiveOwnership:
    """E_p = S_p + E_p·S_cc by sparse fixed-point iteration (the Neumann series of the same
    linear system): exact after as many steps as the longest acyclic holding chain, and
    converging geometrically on cross-holdings (ratio = the cycles' share product)."""
    e = s_p.tocsr()
    s_cc = s_cc.tocsr()
    for _ in range(_MAX_TERMS):
        nxt = (s_p + e @ s_cc).tocsr()
        nxt.data[np.abs(nxt.data) < _EPS] = 0.0
        nxt.eliminate_zeros()
        diff = nxt - e
        e = nxt
        if diff.nnz == 0 or float(np.abs(diff.data).max()) < _EPS:
            break
    coo = e.tocoo()
    person, company, share = pers_ids[coo.row], comp_ids[coo.col], coo.data
    order = np.lexsort((company, person))
    return EffectiveOwnership(person[order], company[order], share[order])


def beneficial_owners(
    effective: EffectiveOwnership,
    controllers: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    is_person: npt.ArrayLike | None = None,
    threshold: float = UBO_THRESHOLD,
) -> tuple[IntArray, IntArray]:
    """(person, company) pairs where the person is an ultimate beneficial owner.

    A natural person is a UBO of a company with an effective share >= `threshold`, or when
    they control it (`controllers` = (controller ids, company ids), restricted to persons).
    """
    hit = effective.share >= threshold - _EPS
    persons = [effective.person[hit]]
    companies = [effective.company[hit]]
    if controllers is not None:
        ctl_p = np.asarray(controllers[0], np.int64)
        ctl_c = np.asarray(controllers[1], np.int64)
        if is_person is not None:
            keep = _members(ctl_p, np.asarray(is_person, np.int64))
            ctl_p, ctl_c = ctl_p[keep], ctl_c[keep]
        persons.append(ctl_p)
        companies.append(ctl_c)
    person, company = np.concatenate(persons), np.concatenate(companies)
    if (
        len(person)
        and min(person.min(), company.min()) >= 0
        and max(person.max(), company.max()) < _PACKABLE
    ):
        packed = np.unique((person << np.int64(32)) | company)
        return packed >> np.int64(32), packed & np.int64(0xFFFFFFFF)
    pairs = np.unique(np.stack([person, company]), axis=1)
    return pairs[0].astype(np.int64), pairs[1].astype(np.int64)


def _members(values: IntArray, of: IntArray) -> npt.NDArray[np.bool_]:
    """Whether each value is one of `of`: through a flag per id where ids are dense."""
    if not len(values) or not len(of):
        return np.zeros(len(values), bool)
    lo = min(int(values.min()), int(of.min()))
    hi = max(int(values.max()), int(of.max()))
    if lo < 0 or hi >= max(1 << 24, 4 * (len(values) + len(of))):  # the flags stay small
        return np.isin(values, of)
    flag = np.zeros(hi + 1, bool)
    flag[of] = True
    return flag[values]
