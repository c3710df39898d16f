"""The sort-based Harrell's C against scikit-survival's ``concordance_index_censored``:
the same concordant, tied and comparable pair counts on random data with tied times,
tied (and nearly tied) risks and censoring, and the weighted counts of a bootstrap
replicate equal to the counts on the resampled rows."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored

from analytics.models import concordance
from analytics.models.concordance import ConcordancePairs, harrell_counts
from analytics.models.validation import harrell_c


def _sksurv_counts(t, e, r) -> tuple[int, int, int]:
    try:
        _c, conc, disc, tied, _ = concordance_index_censored(e, t, r)
    except ValueError:  # no comparable pair (or no event): nothing counted
        return 0, 0, 0
    return int(conc), int(tied), int(conc + disc + tied)


def _random_rows(rng, n: int):
    t = rng.integers(0, 12, n).astype(float) / 4  # many tied times
    e = rng.random(n) < 0.35
    e[rng.integers(0, n)] = True
    r = np.round(rng.normal(size=n), 1)  # many tied risks
    r = r + rng.choice([0.0, 4e-9, 3e-8], n)  # within and beyond the 1e-8 tie tolerance
    return t, e, r


@pytest.mark.parametrize("seed", range(6))
def test_sorted_counts_equal_scikit_survival_with_ties_and_censoring(seed):
    rng = np.random.default_rng(seed)
    for n in (2, 3, 7, 40, 400, 1500):
        t, e, r = _random_rows(rng, n)
        expected = _sksurv_counts(t, e, r)
        tree = ConcordancePairs(t, e, r).counts()
        assert tuple(round(x) for x in tree) == expected, n
        assert harrell_counts(t, e, r) == expected, n


def test_harrell_c_equals_scikit_survival_value_on_the_tree_path(monkeypatch):
    monkeypatch.setattr(concordance, "DIRECT_MAX_PAIRS", 0)  # always the sorted tree
    rng = np.random.default_rng(7)
    t, e, r = _random_rows(rng, 2000)
    c, num, den = harrell_c(t, e.astype(int), r)
    assert c == concordance_index_censored(e, t, r)[0]
    conc, tied, comp = _sksurv_counts(t, e, r)
    assert (num, den) == (2 * conc + tied, 2 * comp)


def test_four_rows_by_hand_on_the_tree_path():
    # events at 1 and 3; censored at 2 and 4: pairs (1,2) (1,3) (1,4) (3,4);
    # risks 0.5 0.6 0.7 0.7: three discordant, (3,4) tied
    t = np.array([1.0, 2.0, 3.0, 4.0])
    e = np.array([True, False, True, False])
    r = np.array([0.5, 0.6, 0.7, 0.7])
    assert ConcordancePairs(t, e, r).counts() == (0.0, 1.0, 4.0)


def test_an_event_and_a_censored_row_at_the_same_time_are_compared_event_first():
    t = np.array([2.0, 2.0, 2.0])
    e = np.array([True, False, True])
    r = np.array([0.9, 0.1, 0.05])
    # (0,1) concordant, (2,1) discordant; the two events at the same time are no pair
    assert ConcordancePairs(t, e, r).counts() == (1.0, 0.0, 2.0)
    assert _sksurv_counts(t, e, r) == (1, 0, 2)


def test_pairs_form_only_within_a_group():
    rng = np.random.default_rng(11)
    t, e, r = _random_rows(rng, 300)
    group = rng.integers(0, 4, 300)
    expected = np.sum([_sksurv_counts(t[group == k], e[group == k], r[group == k])
                       for k in range(4) if e[group == k].any()], axis=0)
    got = ConcordancePairs(t, e, r, group=group).counts()
    assert tuple(round(x) for x in got) == tuple(int(x) for x in expected)


def test_weighted_counts_equal_the_counts_on_resampled_rows():
    # a bootstrap draw repeats rows; weights are how often each row was drawn
    rng = np.random.default_rng(5)
    t, e, r = _random_rows(rng, 250)
    group = rng.integers(0, 3, 250)
    pick = rng.integers(0, 250, 250)
    weight = np.bincount(pick, minlength=250).astype(float)
    expected = np.sum([_sksurv_counts(t[pick][group[pick] == k], e[pick][group[pick] == k],
                                      r[pick][group[pick] == k]) for k in range(3)], axis=0)
    got = ConcordancePairs(t, e, r, group=group).counts(weight)
    assert tuple(round(x) for x in got) == tuple(int(x) for x in expected)


def test_harrell_c_is_nan_where_scikit_survival_raises():
    assert np.isnan(harrell_c(np.array([1.0, 2.0]), np.array([1, 0]),
                              np.array([np.nan, 0.1]))[0])
    # the only event is the last time: no comparable pair
    c, num, den = harrell_c(np.array([1.0, 2.0]), np.array([0, 1]), np.array([0.2, 0.1]))
    assert np.isnan(c) and (num, den) == (0, 0)
