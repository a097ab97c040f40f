"""Exact rational reference for path-dependent TreeSHAP of one tree (brute force per leaf)."""

from fractions import Fraction
from math import factorial

import numpy as np


def exact_tree_shap(cl, cr, cd, feat, thr, w, vals, x, nf):
    """Exact phi (Fractions) for one tree, one row; split rule as shap (x <= thr -> left, NaN -> default)."""
    phi = [Fraction(0)] * nf
    beta = {}

    def weights(d):
        if d not in beta:
            beta[d] = [Fraction(factorial(k) * factorial(d - 1 - k), factorial(d)) for k in range(d)]
        return beta[d]

    def rec(n, path):  # path: dict feature -> (Q, P)
        if cl[n] < 0:
            fv = Fraction(float(vals[n]))
            feats = list(path)
            d = len(feats)
            if d == 0:
                return
            poly = [Fraction(1)]
            for j in feats:
                q, p = path[j]
                new = [Fraction(0)] * (len(poly) + 1)
                for k, c in enumerate(poly):
                    new[k] += c * q
                    new[k + 1] += c * p
                poly = new
            wts = weights(d)
            for i in feats:
                q, p = path[i]
                if p == 0:
                    quo = [c / q for c in poly[:-1]]
                else:  # divide by (q + z): highest coefficient first
                    quo = [Fraction(0)] * (len(poly) - 1)
                    rem = poly[:]
                    for k in range(len(poly) - 1, 0, -1):
                        quo[k - 1] = rem[k]
                        rem[k - 1] -= rem[k] * q
                s = sum(wts[k] * quo[k] for k in range(d))
                phi[i] += fv * (p - q) * s
            return
        f = feat[n]
        xv = x[f]
        go_left = (cd[n] == cl[n]) if np.isnan(xv) else (xv <= thr[n])
        for child, hot in ((cl[n], go_left), (cr[n], not go_left)):
            ratio = Fraction(float(w[child])) / Fraction(float(w[n]))
            q0, p0 = path.get(f, (Fraction(1), 1))
            new = dict(path)
            new[f] = (q0 * ratio, p0 * (1 if hot else 0))
            rec(child, new)

    rec(0, {})
    return phi
