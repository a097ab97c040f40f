"""Exact path-dependent TreeSHAP for tree ensembles, in numba.

The input is shap's own converted ensemble (``shap.TreeExplainer(model).model``), so
units, scalings and split rules match ``shap.TreeExplainer(model).shap_values(X)``
(``model_output="raw"``, ``feature_perturbation="tree_path_dependent"``).

Algorithm (tests/core/test_treeshap.py checks it against shap). For one leaf ``v`` reached by unique path
features ``F_v``, let ``Q_j`` be the product of cover ratios of the splits on feature ``j`` along the path
and ``P_j`` in {0, 1} whether the row satisfies all of them. Path-dependent TreeSHAP is
the Shapley value of ``v(S) = sum_v f_v prod_{j in S} P_j prod_{j not in S} Q_j`` and

    phi_i = sum_v f_v (P_i - Q_i) * integral_0^1 prod_{j != i} (Q_j (1-t) + P_j t) dt,

a polynomial of degree ``|F_v| - 1`` in ``t``. We evaluate it exactly with Gauss-Legendre
quadrature on ``m = ceil(max|F_v| / 2)`` points (the "Linear TreeSHAP" idea, in the
evaluation basis): one pass down the tree multiplies per-point path products, one pass up
sums leaf values times those products, and every edge adds one dot product to its
feature. Repeated features telescope point-wise, so no polynomial division is needed.
All maintained factors lie in (0, 1] and the quadrature weights are positive, so the
result is accurate to ~1e-14 of the output scale at any depth.

Speed comes from processing 8 rows at once as SIMD lanes (tuples of 8 floats that LLVM's
SLP vectoriser turns into vector registers): all per-node bookkeeping is shared by the 8
rows and the per-row work is branch-free arithmetic.

Memory: ``prepare`` builds, per tree, a compact pre-order copy of the tree with the row-
independent quantities (cover products, ancestor links, selected outputs). A tree
whose plan would exceed ``memory_budget_bytes`` is not copied: it is explained by the
fallback kernel, which walks shap's arrays directly with O(depth) scratch. Both are exact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import numba
import numpy as np
from numba import njit, prange
from numba.core import config as _numba_config

logger = logging.getLogger(__name__)

LANES = 8
DEFAULT_MEMORY_BUDGET_BYTES = 16 * 2**20
KIND_PLANNED, KIND_FALLBACK, KIND_CONSTANT = 0, 1, 2
# node code bits
_LEFT, _LEAF, _DEFAULT_LEFT, _CATEGORICAL, _NEED_IF = 1, 2, 4, 8, 16
# slots of the per-block scratch tuple (see _scratch) and of the fallback's walk state
_G, _IF, _D, _S, _P, _DEC, _PHI, _EFD, _FRESH, _AR, _BR = range(11)
_FD, _SAVED, _QD, _PNODE, _STK, _STKD, _LV = range(7)
_Q_FLOOR = 1e-280  # zero-cover nodes would give 0/0; the floor keeps them exact-ish and finite
_SUM_TOL = 1e-13  # relative tolerance for "leaf values sum to a constant over outputs"
# reassociation/contraction only: NaN tests in the split rule must survive (no nnan/ninf)
_FASTMATH = {"contract", "reassoc", "nsz", "arcp"}
_JIT: dict[str, Any] = {"cache": True, "error_model": "numpy", "fastmath": _FASTMATH}
# Kernels that never allocate run without numba's reference counting: its atomic incref /
# decref of the many arrays passed in tuples otherwise costs more than the arithmetic.
_KERNEL: dict[str, Any] = {**_JIT, "_nrt": False}
# Per-node steps are inlined at numba level so the 8-lane tuples stay in registers.
_STEP: dict[str, Any] = {**_KERNEL, "inline": "always"}
# Annotation types only (numba ignores annotations and types kernels from their arguments): 8 lanes as a
# tuple, the arrays the kernels take bundled in tuples (scratch, plan, shap's arrays), the plan's dimensions.
_Vec = tuple[float, float, float, float, float, float, float, float]
_Arrays = tuple[np.ndarray, ...]
_Dims = tuple[int, int, int, int]


class UnsupportedModelError(ValueError):
    """The model or ensemble cannot be explained here; use shap.TreeExplainer instead."""


# --------------------------------------------------------------------------------------
# 8-lane "vector" helpers: tuples of 8 floats, vectorised by LLVM's SLP pass.
# --------------------------------------------------------------------------------------
@njit(**_KERNEL)
def _ld(a: np.ndarray, i: int) -> _Vec:
    return (a[i, 0], a[i, 1], a[i, 2], a[i, 3], a[i, 4], a[i, 5], a[i, 6], a[i, 7])


@njit(**_KERNEL)
def _st(a: np.ndarray, i: int, v: _Vec) -> None:
    a[i, 0] = v[0]
    a[i, 1] = v[1]
    a[i, 2] = v[2]
    a[i, 3] = v[3]
    a[i, 4] = v[4]
    a[i, 5] = v[5]
    a[i, 6] = v[6]
    a[i, 7] = v[7]


@njit(**_KERNEL)
def _fill(x: float) -> _Vec:
    return (x, x, x, x, x, x, x, x)


@njit(**_KERNEL)
def _add(a: _Vec, b: _Vec) -> _Vec:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5], a[6] + b[6], a[7] + b[7])


@njit(**_KERNEL)
def _mul(a: _Vec, b: _Vec) -> _Vec:
    return (a[0] * b[0], a[1] * b[1], a[2] * b[2], a[3] * b[3], a[4] * b[4], a[5] * b[5], a[6] * b[6], a[7] * b[7])


@njit(**_KERNEL)
def _fma(a: _Vec, b: _Vec, c: _Vec) -> _Vec:
    """Return a * b + c lane-wise."""
    return (
        a[0] * b[0] + c[0], a[1] * b[1] + c[1], a[2] * b[2] + c[2], a[3] * b[3] + c[3],
        a[4] * b[4] + c[4], a[5] * b[5] + c[5], a[6] * b[6] + c[6], a[7] * b[7] + c[7],
    )  # fmt: skip


@njit(**_KERNEL)
def _axpb(a: _Vec, s: float, b: float) -> _Vec:
    """Return a * s + b for a vector a and scalars s, b."""
    return (
        a[0] * s + b, a[1] * s + b, a[2] * s + b, a[3] * s + b,
        a[4] * s + b, a[5] * s + b, a[6] * s + b, a[7] * s + b,
    )  # fmt: skip


@njit(**_KERNEL)
def _saxpy(s: float, a: _Vec, b: _Vec) -> _Vec:
    """Return s * a + b for a scalar s and vectors a, b."""
    return (
        s * a[0] + b[0], s * a[1] + b[1], s * a[2] + b[2], s * a[3] + b[3],
        s * a[4] + b[4], s * a[5] + b[5], s * a[6] + b[6], s * a[7] + b[7],
    )  # fmt: skip


@njit(**_KERNEL)
def _scale(s: float, a: _Vec) -> _Vec:
    return (s * a[0], s * a[1], s * a[2], s * a[3], s * a[4], s * a[5], s * a[6], s * a[7])


@njit(**_KERNEL)
def _msub(a: _Vec, b: _Vec, c: _Vec, d: _Vec) -> _Vec:
    """Return a * b - c * d lane-wise."""
    return (
        a[0] * b[0] - c[0] * d[0], a[1] * b[1] - c[1] * d[1], a[2] * b[2] - c[2] * d[2],
        a[3] * b[3] - c[3] * d[3], a[4] * b[4] - c[4] * d[4], a[5] * b[5] - c[5] * d[5],
        a[6] * b[6] - c[6] * d[6], a[7] * b[7] - c[7] * d[7],
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Split rule, identical to shap's C++ (tree_shap.h): missing -> default child; type 0:
# x <= threshold goes left; type 1: categorical bitset test done in float32/int.
# --------------------------------------------------------------------------------------
@njit(**_KERNEL)
def _go_num(x: float, thr: float, default_left: float) -> float:
    if x <= thr:
        return 1.0
    if x != x:
        return default_left
    return 0.0


@njit(**_KERNEL)
def _go_cat(x: float, thr: float, default_left: float) -> float:
    if x != x:
        return default_left
    flag = np.int64(1) << ((np.int64(np.float32(x)) - 1) & 31)
    return 1.0 if (np.int64(np.float32(thr)) & flag) != 0 else 0.0


@njit(**_STEP)
def _route(xt: np.ndarray, feature: int, thr: float, code: int) -> _Vec:
    """Go-left indicators (1.0 / 0.0) of the 8 lanes at one split."""
    x = _ld(xt, feature)
    dl = 1.0 if code & _DEFAULT_LEFT else 0.0
    if code & _CATEGORICAL:
        return (
            _go_cat(x[0], thr, dl), _go_cat(x[1], thr, dl), _go_cat(x[2], thr, dl), _go_cat(x[3], thr, dl),
            _go_cat(x[4], thr, dl), _go_cat(x[5], thr, dl), _go_cat(x[6], thr, dl), _go_cat(x[7], thr, dl),
        )  # fmt: skip
    return (
        _go_num(x[0], thr, dl), _go_num(x[1], thr, dl), _go_num(x[2], thr, dl), _go_num(x[3], thr, dl),
        _go_num(x[4], thr, dl), _go_num(x[5], thr, dl), _go_num(x[6], thr, dl), _go_num(x[7], thr, dl),
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Per-node lane arithmetic shared by the planned and the fallback kernel.
#
# Scratch ``sc`` = (G, IF, D, S, P, DEC, PHI, EFD, FRESH, AR, BR); per depth d and
# quadrature point t (row d * m + t of G/IF/D):
#   G   weight * product of the path factors Q_j (1-t) + P_j t   (the "down" polynomial)
#   IF  1 / (this edge's cumulative factor for its feature)      (for repeated features)
#   D   telescoped edge weight (P_e - Q_e)/F_e - (P_prev - Q_prev)/F_prev
#   S   sum over leaves below of value * G                       (the "up" polynomial)
# --------------------------------------------------------------------------------------
@njit(**_STEP)
def _edge_scalars(
    q: float, m: int, qt: np.ndarray, qomt: np.ndarray, qiomt: np.ndarray, ar: np.ndarray, br: np.ndarray
) -> None:
    """Row-independent reciprocals of an edge: AR[t] = 1 / (q (1-t) + t), BR[t] = 1 / (q (1-t))."""
    iq = 1.0 / q
    for t in range(m):
        ar[t] = 1.0 / (q * qomt[t] + qt[t])
        br[t] = qiomt[t] * iq


@njit(**_STEP)
def _edge_point(t: int, d: int, an: int, m: int, pe: _Vec, q: float, c1: _Vec, c2: _Vec, sc: _Arrays,
                qt: np.ndarray, qomt: np.ndarray, qiomt: np.ndarray) -> tuple[_Vec, _Vec, _Vec]:  # fmt: skip
    """Path product ``g``, edge weight ``dd`` and reciprocal ``ie`` at point t for 8 lanes."""
    g_, if_, ar, br = sc[_G], sc[_IF], sc[_AR], sc[_BR]
    fe = _axpb(pe, qt[t], q * qomt[t])
    ie = _axpb(pe, ar[t] - br[t], br[t])
    gp = _ld(g_, (d - 1) * m + t)
    if an < 0:  # first split on this feature along the path: P_prev = Q_prev = 1
        dd = _axpb(pe, (1.0 - q) * ar[t] + qiomt[t], -qiomt[t])
        return _mul(gp, fe), dd, ie
    ip = _ld(if_, an * m + t)
    return _mul(_mul(gp, fe), ip), _msub(c1, ie, c2, ip), ie


@njit(**_STEP)
def _lane_state(d: int, code: int, an: int, qp: float, sc: _Arrays) -> tuple[_Vec, _Vec]:
    """Per-lane (P_prev, P_e) of the edge into a node at depth d."""
    p_, dec = sc[_P], sc[_DEC]
    dv = _ld(dec, d - 1)
    goes = dv if code & _LEFT else _axpb(dv, -1.0, 1.0)
    if an < 0:
        return _fill(1.0), goes
    pp = _ld(p_, an)
    return pp, _mul(pp, goes)


@njit(**_STEP)
def _enter_internal(d: int, code: int, an: int, q: float, qp: float, m: int, sc: _Arrays,
                    qt: np.ndarray, qomt: np.ndarray, qiomt: np.ndarray) -> None:  # fmt: skip
    """Fill G, D (and IF, P when a descendant repeats the feature) for an internal node."""
    g_, if_, d_, p_ = sc[_G], sc[_IF], sc[_D], sc[_P]
    pp, pe = _lane_state(d, code, an, qp, sc)
    c1 = _axpb(pe, 1.0, -q)
    c2 = _axpb(pp, 1.0, -qp)
    need_if = (code & _NEED_IF) != 0
    for t in range(m):
        g, dd, ie = _edge_point(t, d, an, m, pe, q, c1, c2, sc, qt, qomt, qiomt)
        _st(g_, d * m + t, g)
        _st(d_, d * m + t, dd)
        if need_if:
            _st(if_, d * m + t, ie)
    if need_if:
        _st(p_, d, pe)
    sc[_FRESH][d] = True


@njit(**_STEP)
def _enter_leaf(d: int, code: int, an: int, q: float, qp: float, m: int, vals: np.ndarray, voff: int, nout: int,
                omap: np.ndarray, ooff: int, ef: int, k_all: int, sc: _Arrays,
                qt: np.ndarray, qomt: np.ndarray, qiomt: np.ndarray) -> None:  # fmt: skip
    """Add a leaf's contributions: its own edge (to PHI) and value * G to its parent's S."""
    s_, phi, fresh = sc[_S], sc[_PHI], sc[_FRESH]
    pp, pe = _lane_state(d, code, an, qp, sc)
    c1 = _axpb(pe, 1.0, -q)
    c2 = _axpb(pp, 1.0, -qp)
    acc = _fill(0.0)
    first = fresh[d - 1]
    for t in range(m):
        g, dd, _ = _edge_point(t, d, an, m, pe, q, c1, c2, sc, qt, qomt, qiomt)
        acc = _fma(g, dd, acc)
        for o in range(nout):
            r = ((d - 1) * nout + o) * m + t
            if first:
                _st(s_, r, _scale(vals[voff + o], g))
            else:
                _st(s_, r, _saxpy(vals[voff + o], g, _ld(s_, r)))
    fresh[d - 1] = False
    for o in range(nout):
        row = ef * k_all + omap[ooff + o]
        _st(phi, row, _saxpy(vals[voff + o], acc, _ld(phi, row)))


@njit(**_STEP)
def _close(top: int, m: int, nout: int, omap: np.ndarray, ooff: int, k_all: int, sc: _Arrays) -> None:
    """Finish the internal node at depth ``top``: its edge's dot product, then S to parent."""
    d_, s_, phi, efd, fresh = sc[_D], sc[_S], sc[_PHI], sc[_EFD], sc[_FRESH]
    first = fresh[top - 1]
    for o in range(nout):
        acc = _fill(0.0)
        base = (top * nout + o) * m
        pbase = ((top - 1) * nout + o) * m
        for t in range(m):
            sv = _ld(s_, base + t)
            acc = _fma(sv, _ld(d_, top * m + t), acc)
            _st(s_, pbase + t, sv if first else _add(_ld(s_, pbase + t), sv))
        row = efd[top] * k_all + omap[ooff + o]
        _st(phi, row, _add(_ld(phi, row), acc))
    fresh[top - 1] = False


@njit(**_STEP)
def _start_tree(m: int, qw: np.ndarray, sc: _Arrays) -> None:
    for t in range(m):
        _st(sc[_G], t, _fill(qw[t]))
    sc[_FRESH][0] = True


# --------------------------------------------------------------------------------------
# Planned kernel: one tree in pre-order layout (left child = next node), 8 rows.
# --------------------------------------------------------------------------------------
@njit(**_KERNEL)
def _tree_planned(
    xt: np.ndarray, tr: int, k_all: int, tmeta: _Arrays, nodes: _Arrays, quad: _Arrays, sc: _Arrays
) -> None:
    node_off, val_off, nout_t, out_off, omap, tree_m, _, _ = tmeta
    depth, code, anc, efeat, nfeat, qe, qp, thr, vals = nodes
    a, b, m, nout, ooff = node_off[tr], node_off[tr + 1], tree_m[tr], nout_t[tr], out_off[tr]
    qt, qomt, qiomt, qw = quad[0][m], quad[1][m], quad[2][m], quad[3][m]
    _start_tree(m, qw, sc)
    _st(sc[_DEC], 0, _route(xt, nfeat[a], thr[a], code[a]))
    top = 0
    for k in range(a + 1, b):
        d = depth[k]
        while top >= d:
            _close(top, m, nout, omap, ooff, k_all, sc)
            top -= 1
        _edge_scalars(qe[k], m, qt, qomt, qiomt, sc[_AR], sc[_BR])
        if code[k] & _LEAF:
            voff = val_off[tr] + (k - a) * nout
            _enter_leaf(d, code[k], anc[k], qe[k], qp[k], m, vals, voff, nout, omap, ooff, efeat[k], k_all, sc,
                        qt, qomt, qiomt)  # fmt: skip
            top = d - 1
        else:
            _enter_internal(d, code[k], anc[k], qe[k], qp[k], m, sc, qt, qomt, qiomt)
            _st(sc[_DEC], d, _route(xt, nfeat[k], thr[k], code[k]))
            sc[_EFD][d] = efeat[k]
            top = d
    while top >= 1:
        _close(top, m, nout, omap, ooff, k_all, sc)
        top -= 1


# --------------------------------------------------------------------------------------
# Fallback kernel: walks shap's padded arrays directly, O(depth) scratch, no plan.
# ``fb`` = (FD feature -> depth of last split on it, SAVED, QD cumulative cover, PNODE,
#           STACK node, STACK depth)
# --------------------------------------------------------------------------------------
@njit(**_STEP)
def _fallback_node(
    n: int, d: int, raw: _Arrays, ti: int, fb: _Arrays, code_left: bool
) -> tuple[int, int, float, float, int]:
    """Edge quantities of raw node n at depth d: (code, anc depth, q_e, q_prev, feature)."""
    cl, cr, cd, feat, ttype, _, w, _ = raw
    fd, saved, qd, pnode = fb[_FD], fb[_SAVED], fb[_QD], fb[_PNODE]
    par = pnode[d - 1]
    pnode[d] = n
    ef = feat[ti, par]
    an = fd[ef]
    saved[d] = an
    fd[ef] = d
    qprev = qd[an] if an >= 0 else 1.0
    q = max(qprev * (w[ti, n] / w[ti, par]), _Q_FLOOR)
    qd[d] = q
    leaf = cl[ti, n] < 0 or cr[ti, n] < 0
    code = (_LEFT if code_left else 0) | (_LEAF if leaf else 0) | _NEED_IF
    if not leaf:
        code |= (_DEFAULT_LEFT if cd[ti, n] == cl[ti, n] else 0) | (_CATEGORICAL if ttype[ti, n] == 1 else 0)
    return code, an, q, qprev, ef


@njit(**_STEP)
def _fallback_pop(
    top: int, d: int, m: int, nout: int, omap: np.ndarray, ooff: int, k_all: int, sc: _Arrays, fb: _Arrays
) -> int:
    """Close internal nodes at depths >= d and restore the feature -> depth map."""
    while top >= d:
        _close(top, m, nout, omap, ooff, k_all, sc)
        fb[_FD][sc[_EFD][top]] = fb[_SAVED][top]
        top -= 1
    return top


@njit(**_STEP)
def _fallback_leaf_values(
    values: np.ndarray, ti: int, n: int, omap: np.ndarray, ooff: int, nout: int, lv: np.ndarray
) -> None:
    for o in range(nout):
        lv[o] = values[ti, n, omap[ooff + o]]


@njit(**_KERNEL)
def _tree_fallback(
    xt: np.ndarray, tr: int, k_all: int, tmeta: _Arrays, raw: _Arrays, quad: _Arrays, sc: _Arrays, fb: _Arrays
) -> None:
    cl, cr, cd, feat, ttype, thr, _, values = raw
    _, _, nout_t, out_off, omap, tree_m, _, tindex = tmeta
    ti, m, nout, ooff = tindex[tr], tree_m[tr], nout_t[tr], out_off[tr]
    qt, qomt, qiomt, qw = quad[0][m], quad[1][m], quad[2][m], quad[3][m]
    stk, stkd, lv = fb[_STK], fb[_STKD], fb[_LV]
    fb[_FD][:] = -1
    fb[_PNODE][0] = 0
    _start_tree(m, qw, sc)
    rcode = (_DEFAULT_LEFT if cd[ti, 0] == cl[ti, 0] else 0) | (_CATEGORICAL if ttype[ti, 0] == 1 else 0)
    _st(sc[_DEC], 0, _route(xt, feat[ti, 0], thr[ti, 0], rcode))
    top, sp = 0, 1
    stk[0], stkd[0] = cr[ti, 0], 1
    n, d = cl[ti, 0], 1
    while True:
        top = _fallback_pop(top, d, m, nout, omap, ooff, k_all, sc, fb)
        code, an, q, qprev, ef = _fallback_node(n, d, raw, ti, fb, n == cl[ti, fb[_PNODE][d - 1]])
        _edge_scalars(q, m, qt, qomt, qiomt, sc[_AR], sc[_BR])
        if code & _LEAF:
            _fallback_leaf_values(values, ti, n, omap, ooff, nout, lv)
            _enter_leaf(d, code, an, q, qprev, m, lv, 0, nout, omap, ooff, ef, k_all, sc, qt, qomt, qiomt)
            fb[_FD][ef] = fb[_SAVED][d]
            top = d - 1
            if sp == 0:
                break
            sp -= 1
            n, d = stk[sp], stkd[sp]
        else:
            _enter_internal(d, code, an, q, qprev, m, sc, qt, qomt, qiomt)
            _st(sc[_DEC], d, _route(xt, feat[ti, n], thr[ti, n], code))
            sc[_EFD][d] = ef
            stk[sp], stkd[sp] = cr[ti, n], d + 1
            sp += 1
            n, d = cl[ti, n], d + 1
    _fallback_pop(top, 1, m, nout, omap, ooff, k_all, sc, fb)


# --------------------------------------------------------------------------------------
# Driver: blocks of 8 rows (optionally x chunks of trees when rows are few) in parallel.
# --------------------------------------------------------------------------------------
@njit(**_JIT)
def _scratch(max_depth: int, max_m: int, max_nout: int, nf: int, k_all: int) -> _Arrays:
    rows = (max_depth + 2) * max_m
    g_ = np.empty((rows, LANES))
    if_ = np.empty((rows, LANES))
    d_ = np.empty((rows, LANES))
    s_ = np.empty((rows * max(max_nout, 1), LANES))
    p_ = np.empty((max_depth + 2, LANES))
    dec = np.empty((max_depth + 2, LANES))
    phi = np.zeros((nf * k_all, LANES))
    efd = np.zeros(max_depth + 2, np.int64)
    fresh = np.zeros(max_depth + 2, np.bool_)
    return (g_, if_, d_, s_, p_, dec, phi, efd, fresh, np.empty(max_m), np.empty(max_m))


@njit(**_JIT)
def _fallback_scratch(max_depth: int, nf: int, max_nout: int) -> _Arrays:
    fd = np.full(nf, -1, np.int64)
    saved = np.zeros(max_depth + 2, np.int64)
    qd = np.ones(max_depth + 2)
    pnode = np.zeros(max_depth + 2, np.int64)
    stk = np.zeros(max_depth + 2, np.int64)
    stkd = np.zeros(max_depth + 2, np.int64)
    return (fd, saved, qd, pnode, stk, stkd, np.zeros(max(max_nout, 1)))


@njit(**_JIT)
def _load_block(x: np.ndarray, blk: int) -> np.ndarray:
    """Rows blk*8 .. blk*8+7 transposed to (features, lanes); the last row pads a short block."""
    n, nf = x.shape
    xt = np.empty((nf, LANES))
    for j in range(LANES):
        i = min(blk * LANES + j, n - 1)
        for f in range(nf):
            xt[f, j] = x[i, f]
    return xt


@njit(**_KERNEL)
def _store_block(out: np.ndarray, phi: np.ndarray, blk: int, k_all: int) -> None:
    n, nf = out.shape[0], out.shape[1]
    for j in range(LANES):
        i = blk * LANES + j
        if i < n:
            for f in range(nf):
                for o in range(k_all):
                    out[i, f, o] = phi[f * k_all + o, j]


@njit(parallel=True, **_JIT)
def _explain(
    x: np.ndarray, n_chunks: int, k_all: int, tmeta: _Arrays, nodes: _Arrays, raw: _Arrays, quad: _Arrays, dims: _Dims
) -> np.ndarray:
    max_depth, max_m, max_nout, nf_raw = dims
    n, nf = x.shape
    n_trees = tmeta[5].shape[0]
    nb = (n + LANES - 1) // LANES
    out = np.zeros((n_chunks, n, nf, k_all))
    for item in prange(nb * n_chunks):
        blk, ch = item // n_chunks, item % n_chunks
        sc = _scratch(max_depth, max_m, max_nout, nf, k_all)
        fb = _fallback_scratch(max_depth, max(nf, nf_raw), max_nout)
        xt = _load_block(x, blk)
        for tr in range(ch, n_trees, n_chunks):
            kind = tmeta[6][tr]
            if kind == KIND_PLANNED:
                _tree_planned(xt, tr, k_all, tmeta, nodes, quad, sc)
            elif kind == KIND_FALLBACK:
                _tree_fallback(xt, tr, k_all, tmeta, raw, quad, sc, fb)
        _store_block(out[ch], sc[_PHI], blk, k_all)
    return out


# --------------------------------------------------------------------------------------
# Plan construction (row independent, once per model).
# --------------------------------------------------------------------------------------
@njit(**_JIT)
def _push(stk: np.ndarray, stkd: np.ndarray, sp: int, node: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Push onto a growable DFS stack; returns the (possibly reallocated) stack arrays."""
    if sp == stk.shape[0]:
        stk = np.concatenate((stk, np.empty_like(stk)))
        stkd = np.concatenate((stkd, np.empty_like(stkd)))
    stk[sp], stkd[sp] = node, depth
    return stk, stkd


@njit(**_JIT)
def _leaf_summary(values: np.ndarray, v: int, active: np.ndarray, acc: np.ndarray) -> None:
    """Track which outputs are non-zero and the range of the leaf's sum over outputs."""
    total = 0.0
    for o in range(values.shape[1]):
        x = values[v, o]
        total += x
        active[o] |= x != 0.0
        acc[2] = max(acc[2], abs(x))
    acc[0], acc[1] = min(acc[0], total), max(acc[1], total)


@njit(**_JIT)
def _tree_stats(
    cl: np.ndarray, cr: np.ndarray, feat: np.ndarray, values: np.ndarray, nf: int, active: np.ndarray
) -> tuple[int, int, int, float, float, float]:
    """One DFS over a tree with O(depth + features) memory.

    Returns (reachable nodes, max depth, max distinct features on a root-leaf path, min and
    max over leaves of the sum of outputs, max |leaf value|); sets ``active[o]`` for outputs
    with a non-zero leaf value.
    """
    cnt, path_f = np.zeros(nf, np.int64), np.full(64, -1, np.int64)
    stk, stkd = np.zeros(64, np.int64), np.zeros(64, np.int64)
    acc = np.array([np.inf, -np.inf, 0.0])
    sp, n_reach, max_d, max_u, uniq, top = 1, 0, 0, 0, 0, 0
    while sp > 0:
        sp -= 1
        v, d = stk[sp], stkd[sp]
        while top >= d and top > 0:  # leave the path nodes at depth >= d
            cnt[path_f[top]] -= 1
            uniq -= 1 if cnt[path_f[top]] == 0 else 0
            top -= 1
        if d > 0:
            uniq += 1 if cnt[path_f[d]] == 0 else 0
            cnt[path_f[d]] += 1
        top, n_reach, max_d, max_u = d, n_reach + 1, max(max_d, d), max(max_u, uniq)
        if cl[v] < 0 or cr[v] < 0:
            _leaf_summary(values, v, active, acc)
            continue
        if d + 2 >= path_f.shape[0]:
            path_f = np.concatenate((path_f, np.full(path_f.shape[0], -1, np.int64)))
        path_f[d + 1] = feat[v]
        stk, stkd = _push(stk, stkd, sp, cr[v], d + 1)
        stk, stkd = _push(stk, stkd, sp + 1, cl[v], d + 1)
        sp += 2
    return n_reach, max_d, max_u, acc[0], acc[1], acc[2]


@njit(**_JIT)
def _node_edge(
    v: int, par: int, d: int, raw_i: _Arrays, fd: np.ndarray, saved: np.ndarray, qd: np.ndarray
) -> tuple[int, float, float, int]:
    """Edge into raw node v from par: (anc depth, q_e, q_prev, feature); updates fd/qd."""
    feat, w = raw_i[3], raw_i[6]
    f = feat[par]
    an = fd[f]
    saved[d] = an
    fd[f] = d
    qprev = qd[an] if an >= 0 else 1.0
    q = max(qprev * (w[v] / w[par]), _Q_FLOOR)
    qd[d] = q
    return an, q, qprev, f


@njit(**_JIT)
def _node_split(v: int, idx: int, raw_i: _Arrays, outcols: np.ndarray, nodes: _Arrays, voff: int) -> bool:
    """Split fields of an internal node, or the (selected) output values of a leaf."""
    cl, cr, cd, feat, ttype, thr, _, values = raw_i
    code, nfeat, nthr, vals = nodes[1], nodes[4], nodes[7], nodes[8]
    if cl[v] < 0 or cr[v] < 0:
        code[idx] |= _LEAF
        for o in range(outcols.shape[0]):
            vals[voff + o] = values[v, outcols[o]]
        return False
    code[idx] |= (_DEFAULT_LEFT if cd[v] == cl[v] else 0) | (_CATEGORICAL if ttype[v] == 1 else 0)
    nfeat[idx], nthr[idx] = feat[v], thr[v]
    return True


@njit(**_JIT)
def _build_tree(
    raw_i: _Arrays, outcols: np.ndarray, nf: int, max_depth: int, nodes: _Arrays, base: int, vbase: int
) -> None:
    """Write one tree in pre-order into the plan arrays from node ``base`` (O(depth) scratch)."""
    cl, cr = raw_i[0], raw_i[1]
    depth, code, anc, efeat, qe, qp = nodes[0], nodes[1], nodes[2], nodes[3], nodes[5], nodes[6]
    size = max_depth + 3
    fd, saved, qd = np.full(nf, -1, np.int64), np.zeros(size, np.int64), np.ones(size)
    path_v, path_k, path_f = np.zeros(size, np.int64), np.zeros(size, np.int64), np.zeros(size, np.int64)
    stk, stkd = np.zeros(size, np.int64), np.zeros(size, np.int64)
    sp, top, idx = 1, 0, base
    while sp > 0:
        sp -= 1
        v, d = stk[sp], stkd[sp]
        while top >= d and top > 0:
            fd[path_f[top]] = saved[top]
            top -= 1
        depth[idx], code[idx], anc[idx], qe[idx], qp[idx], efeat[idx] = d, 0, -1, 1.0, 1.0, 0
        if d > 0:
            par = path_v[d - 1]
            anc[idx], qe[idx], qp[idx], efeat[idx] = _node_edge(v, par, d, raw_i, fd, saved, qd)
            path_f[d] = efeat[idx]
            code[idx] |= _LEFT if v == cl[par] else 0
            if anc[idx] >= 0:
                code[path_k[anc[idx]]] |= _NEED_IF
        path_v[d], path_k[d], top = v, idx, d
        if _node_split(v, idx, raw_i, outcols, nodes, vbase + (idx - base) * outcols.shape[0]):
            stk[sp], stkd[sp], stk[sp + 1], stkd[sp + 1] = cr[v], d + 1, cl[v], d + 1
            sp += 2
        idx += 1


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """Row-independent precomputation for one ensemble (plain numpy arrays, picklable).

    Attributes:
        n_features: Minimum number of columns X must have.
        n_outputs: Number of model outputs (last axis of the SHAP values).
        input_dtype: dtype shap casts X to before explaining (float32 for most sklearn).
        expected: Expected value per output (sum of tree root values + base offset).
        derive_last: Whether the last output is computed as minus the sum of the others
            (every tree's leaf values sum to a constant over outputs, e.g. probabilities).
        tree_kind: Per tree: 0 planned, 1 fallback (over budget), 2 constant (no splits).
        tree_bytes: Per tree: bytes of plan arrays allocated for it.
        memory_budget_bytes: The per-tree budget this plan was built with.
        tmeta: Per-tree metadata arrays passed to the kernel.
        nodes: Per-node arrays of planned trees, concatenated in pre-order.
        raw: shap's padded arrays (references, not copies) when any tree uses the fallback.
        quad: Gauss-Legendre tables (points, 1 - points, 1 / (1 - points), weights) per m.
        dims: (max depth, max quadrature points, max computed outputs, raw feature count).
    """

    n_features: int
    n_outputs: int
    input_dtype: str
    expected: np.ndarray
    derive_last: bool
    tree_kind: np.ndarray
    tree_bytes: np.ndarray
    memory_budget_bytes: int
    tmeta: _Arrays
    nodes: _Arrays
    raw: _Arrays
    quad: _Arrays
    dims: _Dims

    @property
    def n_trees(self) -> int:
        """Number of trees explained."""
        return int(self.tree_kind.shape[0])

    @property
    def fallback_trees(self) -> np.ndarray:
        """Indices of trees explained by the budget fallback."""
        return np.flatnonzero(self.tree_kind == KIND_FALLBACK)

    @property
    def nbytes(self) -> int:
        """Bytes held by the plan's own arrays (excluding referenced shap arrays)."""
        arrays = [*self.tmeta, *self.nodes, *self.quad, self.expected, self.tree_kind, self.tree_bytes]
        return int(sum(a.nbytes for a in arrays))


_NODE_BYTES = 4 * 5 + 8 * 3  # depth, code, anc, efeat, nfeat (int32) + qe, qp, thr (float64)
_ENSEMBLE_FIELDS = ("children_left", "children_right", "children_default", "features", "threshold_types",
                    "thresholds", "node_sample_weight", "values")  # fmt: skip


def _raw_arrays(ensemble: Any, n_trees: int) -> _Arrays:
    """Typed, C-contiguous views of shap's padded tree arrays (first ``n_trees`` trees)."""
    missing = [f for f in _ENSEMBLE_FIELDS if getattr(ensemble, f, None) is None]
    if missing:
        raise UnsupportedModelError(f"ensemble lacks {missing}; pass shap.TreeExplainer(model).model")
    dtypes = [np.int32] * 5 + [np.float64] * 3
    arrs = [np.ascontiguousarray(np.asarray(getattr(ensemble, f))[:n_trees], dtype=t)
            for f, t in zip(_ENSEMBLE_FIELDS, dtypes, strict=True)]  # fmt: skip
    if arrs[7].ndim != 3:
        raise UnsupportedModelError("ensemble.values must be (n_trees, max_nodes, n_outputs)")
    return tuple(arrs)


def _check_ensemble(ensemble: Any) -> None:
    model_type = getattr(ensemble, "model_type", "internal")
    if model_type != "internal":
        raise UnsupportedModelError(
            f"{model_type} ensembles are explained by their own library inside shap; use shap.TreeExplainer"
        )


def _n_trees(ensemble: Any, tree_limit: int | None) -> int:
    total = int(np.asarray(ensemble.values).shape[0])
    if tree_limit is None:
        tree_limit = getattr(ensemble, "tree_limit", None)
    if tree_limit is None or tree_limit < 0 or tree_limit > total:
        return total
    return int(tree_limit)


def _quadrature(max_m: int) -> _Arrays:
    """Gauss-Legendre rules on [0, 1] for 1..max_m points, padded to (max_m + 1, max_m)."""
    qt = np.full((max_m + 1, max_m), 0.5)
    qw = np.zeros((max_m + 1, max_m))
    for m in range(1, max_m + 1):
        x, w = np.polynomial.legendre.leggauss(m)
        qt[m, :m], qw[m, :m] = (x + 1.0) / 2.0, w / 2.0
    return qt, 1.0 - qt, 1.0 / (1.0 - qt), qw


def _tree_structure(raw: _Arrays, nf: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-tree statistics (see ``_tree_stats``) and per-tree non-zero output flags."""
    cl, cr, feat, values = raw[0], raw[1], raw[3], raw[7]
    stats = np.zeros((cl.shape[0], 6))
    active = np.zeros((cl.shape[0], values.shape[2]), np.bool_)
    for i in range(cl.shape[0]):
        stats[i] = _tree_stats(cl[i], cr[i], feat[i], values[i], nf, active[i])
    return stats, active


def _output_layout(stats: np.ndarray, active: np.ndarray) -> tuple[bool, list[np.ndarray]]:
    """Whether the last output is derivable, and the output columns computed for each tree.

    When every tree's leaf values sum to a constant over the outputs (class probabilities),
    the last output's SHAP values are minus the sum of the others, so it is not computed.
    """
    n_out = active.shape[1]
    spread = stats[:, 4] - stats[:, 3]
    derive_last = bool(n_out >= 2 and np.all(spread <= _SUM_TOL * max(1.0, float(stats[:, 5].max(initial=0.0)))))
    k_comp = n_out - 1 if derive_last else n_out
    return derive_last, [np.flatnonzero(a[:k_comp]).astype(np.int32) for a in active]


def _choose_kinds(n_reach: np.ndarray, nout: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Per tree: kind (planned / fallback / constant) and the bytes its plan allocates."""
    need = n_reach * (_NODE_BYTES + 8 * nout)
    kind = np.where(need <= budget, KIND_PLANNED, KIND_FALLBACK)
    kind = np.where((n_reach <= 1) | (nout == 0), KIND_CONSTANT, kind).astype(np.int64)
    return kind, np.where(kind == KIND_PLANNED, need, 0)


def _offsets(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _build_nodes(
    raw: _Arrays, nf: int, kind: np.ndarray, stats: np.ndarray, outcols: list[np.ndarray]
) -> tuple[_Arrays, np.ndarray, np.ndarray]:
    """Allocate and fill the pre-order node arrays of all planned trees; also their offsets."""
    planned = kind == KIND_PLANNED
    n_reach = stats[:, 0].astype(np.int64)
    nout = np.array([len(c) for c in outcols], np.int64)
    node_off = _offsets(np.where(planned, n_reach, 0))
    val_off = _offsets(np.where(planned, n_reach * nout, 0))
    total = int(node_off[-1])
    ints = [np.zeros(total, np.int32) for _ in range(5)]
    floats = [np.zeros(total) for _ in range(3)]
    nodes: _Arrays = (*ints, *floats, np.zeros(int(val_off[-1])))
    for i in np.flatnonzero(planned):
        raw_i = tuple(a[i] for a in raw)
        _build_tree(raw_i, outcols[i], nf, int(stats[i, 1]), nodes, int(node_off[i]), int(val_off[i]))
    return nodes, node_off, val_off[:-1]


def prepare(
    ensemble: Any,
    *,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    tree_limit: int | None = None,
) -> Plan:
    """Precompute everything that depends only on the trees.

    Args:
        ensemble: ``shap.TreeExplainer(model).model`` (a shap ``TreeEnsemble``) or any object
            with the same padded arrays, ``base_offset`` and optionally ``input_dtype``.
        memory_budget_bytes: Largest plan, in bytes, allocated for any single tree. A tree
            over budget is explained by the exact fallback kernel straight from shap's arrays.
        tree_limit: Explain only the first trees (default: the ensemble's own limit).

    Returns:
        The plan; pass it to :func:`shap_values` and :func:`expected_value`.

    Raises:
        UnsupportedModelError: The ensemble is not one shap explains with its own C++ code.
    """
    _check_ensemble(ensemble)
    n_trees = _n_trees(ensemble, tree_limit)
    raw = _raw_arrays(ensemble, n_trees)
    nf = int(max(int(raw[3].max(initial=-1)) + 1, 1))
    stats, active = _tree_structure(raw, nf)
    derive_last, outcols = _output_layout(stats, active)
    nout = np.array([len(c) for c in outcols], np.int64)
    depth, m = stats[:, 1].astype(np.int64), np.maximum(1, (stats[:, 2].astype(np.int64) + 1) // 2)
    kind, nbytes = _choose_kinds(stats[:, 0].astype(np.int64), nout, int(memory_budget_bytes))
    nodes, node_off, val_off = _build_nodes(raw, nf, kind, stats, outcols)
    omap = np.concatenate([np.zeros(0, np.int32), *outcols])
    tmeta = (node_off, val_off, nout, _offsets(nout)[:-1], omap, m, kind, np.arange(n_trees, dtype=np.int64))
    if not np.any(kind == KIND_FALLBACK):
        raw = tuple(a[:0] for a in raw)  # the kernel never reads them; keep the plan small
    return Plan(
        n_features=nf, n_outputs=int(raw[7].shape[2]), input_dtype=_input_dtype(ensemble),
        expected=_expected(ensemble, n_trees), derive_last=derive_last, tree_kind=kind.astype(np.int8),
        tree_bytes=nbytes, memory_budget_bytes=int(memory_budget_bytes), tmeta=tmeta, nodes=nodes, raw=raw,
        quad=_quadrature(int(m.max(initial=1))),
        dims=(int(depth.max(initial=0)), int(m.max(initial=1)), int(nout.max(initial=1)), nf),
    )  # fmt: skip


def _input_dtype(ensemble: Any) -> str:
    return np.dtype(getattr(ensemble, "input_dtype", np.float64)).name


def _expected(ensemble: Any, n_trees: int) -> np.ndarray:
    """Sum of root values (shap's tree expectations) plus the base offset, per output."""
    values = np.asarray(ensemble.values, dtype=np.float64)
    base = np.asarray(getattr(ensemble, "base_offset", 0.0), dtype=np.float64).reshape(-1)
    return cast(np.ndarray, values[:n_trees, 0, :].sum(axis=0) + base)


def expected_value(plan: Plan) -> np.ndarray:
    """Expected model output per output (``explainer.expected_value`` as an array).

    Args:
        plan: From :func:`prepare`.

    Returns:
        Array of shape (n_outputs,).
    """
    return plan.expected.copy()


class _SlpSwitch:
    """Reference-counted switch for numba's SLP vectoriser, which numba leaves off by default.

    The setting is only read while numba compiles, so it matters for the first call (or a
    cache miss); the count makes concurrent calls restore the caller's value exactly once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._saved = _numba_config.SLP_VECTORIZE
                _numba_config.SLP_VECTORIZE = 1
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    _numba_config.SLP_VECTORIZE = self._saved


_SLP = _SlpSwitch()


@contextlib.contextmanager
def _kernel_settings(n_threads: int) -> Iterator[None]:
    """Run with ``n_threads`` numba threads (thread-local, restored) and SLP vectorisation on."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        with _SLP.on():
            yield
    finally:
        numba.set_num_threads(previous)


def _as_rows(plan: Plan, X: Any) -> np.ndarray:
    """X as float64 rows, rounded through shap's input dtype first (as shap does)."""
    x = np.asarray(getattr(X, "values", X))
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2 or x.shape[1] < plan.n_features:
        raise ValueError(f"X must be 2-D with at least {plan.n_features} columns, got shape {x.shape}")
    return np.ascontiguousarray(x.astype(plan.input_dtype).astype(np.float64))


def shap_values(plan: Plan, X: Any, *, n_threads: int | None = None) -> np.ndarray:
    """Path-dependent SHAP values, equal to shap's ``TreeExplainer(model).shap_values(X)``.

    Args:
        plan: From :func:`prepare`.
        X: Rows to explain, (n_rows, n_features) array-like; NaN means missing.
        n_threads: Threads to use (default: numba's configured count); 1 forces serial.

    Returns:
        Array of shape (n_rows, n_features, n_outputs), float64.
    """
    x = _as_rows(plan, X)
    n_rows = x.shape[0]
    if n_rows == 0:
        return np.zeros((0, x.shape[1], plan.n_outputs))
    threads = max(1, min(int(n_threads or numba.config.NUMBA_NUM_THREADS), numba.config.NUMBA_NUM_THREADS))
    n_blocks = -(-n_rows // LANES)
    n_chunks = 1 if n_blocks >= threads else max(1, min(-(-threads // n_blocks), plan.n_trees))
    with _kernel_settings(threads):
        parts = _explain(x, n_chunks, plan.n_outputs, plan.tmeta, plan.nodes, plan.raw, plan.quad, plan.dims)
    out: np.ndarray = parts[0] if n_chunks == 1 else parts.sum(axis=0)
    if plan.derive_last:
        out[:, :, -1] = -out[:, :, :-1].sum(axis=2)
    return out


# --------------------------------------------------------------------------------------
# Model helpers (optional; prepare() itself only needs the ensemble's arrays)
# --------------------------------------------------------------------------------------
def _is_instance(model: Any, names: tuple[str, ...]) -> bool:
    return any(f"{c.__module__}.{c.__qualname__}".startswith(names) for c in type(model).__mro__)


def _check_hgb_categorical(model: Any) -> None:
    categorical = getattr(model, "is_categorical_", None)
    if categorical is not None and np.any(categorical):
        raise UnsupportedModelError(
            "HistGradientBoosting native categorical splits are not supported (shap ignores them too); "
            "one-hot/ordinal-encode the categories or explain with another method"
        )


def gbc_multiclass_model(model: Any) -> dict[str, Any]:
    """Describe a multiclass ``GradientBoostingClassifier`` as a shap dict model.

    shap's ``TreeExplainer`` rejects multiclass gradient boosting; the returned dict is the
    tree-list format it accepts (``shap.TreeExplainer(d)``) with one output per class in
    raw (log-odds / decision_function) units.

    Args:
        model: A fitted multiclass ``sklearn.ensemble.GradientBoostingClassifier``.

    Returns:
        ``{"trees": [...], "base_offset": ..., "input_dtype": np.float32, "tree_output": "log_odds"}``.
    """
    stages = model.estimators_
    n_classes = stages.shape[1]
    trees = []
    for stage in stages:
        for k, est in enumerate(stage):
            t = est.tree_
            values = np.zeros((t.node_count, n_classes))
            values[:, k] = t.value[:, 0, 0] * model.learning_rate
            go_left = getattr(t, "missing_go_to_left", np.ones(t.node_count, bool)).astype(bool)
            trees.append({
                "children_left": t.children_left.astype(np.int32), "children_right": t.children_right.astype(np.int32),
                "children_default": np.where(go_left, t.children_left, t.children_right).astype(np.int32),
                "features": t.feature.astype(np.int32), "thresholds": t.threshold.astype(np.float64),
                "values": values, "node_sample_weight": t.weighted_n_node_samples.astype(np.float64),
            })  # fmt: skip
    x0 = np.zeros((1, model.n_features_in_), np.float32)
    from_trees = sum(tr["values"][_leaf_of(tr, x0[0])] for tr in trees)
    base = model.decision_function(x0)[0] - from_trees
    return {"trees": trees, "base_offset": base, "input_dtype": np.float32, "tree_output": "log_odds"}


def _leaf_of(tree: dict[str, Any], x: np.ndarray) -> int:
    n = 0
    while tree["children_left"][n] >= 0:
        go_left = x[tree["features"][n]] <= tree["thresholds"][n]
        n = tree["children_left"][n] if go_left else tree["children_right"][n]
    return n


def ensemble_from_model(model: Any) -> Any:
    """Return shap's converted ensemble for a fitted scikit-learn tree model, or raise a clear error.

    Args:
        model: RandomForest*/ExtraTrees*/DecisionTree*/GradientBoosting*/HistGradientBoosting*.

    Returns:
        The object to pass to :func:`prepare` (``shap.TreeExplainer(model).model``, or the
        converted dict model for multiclass gradient boosting).

    Raises:
        UnsupportedModelError: HGB with native categorical splits, or a model shap rejects.
    """
    import shap  # local import: the kernels themselves do not need shap

    _check_hgb_categorical(model)
    if _is_instance(model, ("sklearn.ensemble._gb.GradientBoostingClassifier",)) and model.estimators_.shape[1] > 1:
        return shap.explainers._tree.TreeEnsemble(gbc_multiclass_model(model))
    try:
        return shap.TreeExplainer(model).model
    except Exception as exc:  # shap raises bare Exception/InvalidModelError subclasses
        raise UnsupportedModelError(f"shap cannot convert {type(model).__name__}: {exc}") from exc


# --------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------
def _tiny_ensemble() -> Any:
    """Three small trees: repeated feature + missing values, a single leaf, a categorical split."""
    cl = np.array([[1, 3, -1, 5, -1, -1, -1], [-1] * 7, [1, -1, -1] + [-1] * 4], np.int32)
    cr = np.array([[2, 4, -1, 6, -1, -1, -1], [-1] * 7, [2, -1, -1] + [-1] * 4], np.int32)
    w = np.array([[10, 6, 4, 4, 2, 2, 2], [5] + [0] * 6, [8, 3, 5] + [0] * 4], np.float64)
    values = np.zeros((3, 7, 2))
    values[0, [2, 4, 5, 6], :] = [[0.1, 0.9], [0.5, 0.5], [0.7, 0.3], [0.2, 0.8]]
    values[1, 0], values[2, [1, 2], :] = [0.4, 0.6], [[0.3, 0.7], [0.9, 0.1]]
    return type("TinyEnsemble", (), {
        "children_left": cl, "children_right": cr, "children_default": cr.copy(),
        "features": np.array([[0, 0, -1, 1] + [-1] * 3, [-1] * 7, [1] + [-1] * 6], np.int32),
        "thresholds": np.array([[0.5, 0.0, 0, 1.5, 0, 0, 0], [0] * 7, [6.0] + [0] * 6], np.float64),
        "threshold_types": np.array([[0] * 7, [0] * 7, [1] + [0] * 6], np.int32),
        "node_sample_weight": w, "values": values, "base_offset": np.zeros(2), "input_dtype": np.float64,
    })  # fmt: skip


def warm_up() -> dict[str, float]:
    """Compile (or load from numba's on-disk cache) every kernel on a tiny input.

    Returns:
        Seconds spent in ``prepare`` and in the first ``shap_values`` call.
    """
    ens = _tiny_ensemble()
    x = np.array([[0.2, 1.0], [np.nan, 2.0], [0.7, np.nan], [1.2, 3.0]])
    start = time.perf_counter()
    plan = prepare(ens, memory_budget_bytes=4 * (_NODE_BYTES + 16))  # tree 0 falls back, tree 2 planned
    mid = time.perf_counter()
    shap_values(plan, x, n_threads=1)
    end = time.perf_counter()
    logger.debug("fasttreeshap_nb warm-up: prepare %.2fs, shap_values %.2fs", mid - start, end - mid)
    return {"prepare_s": mid - start, "shap_values_s": end - mid}
