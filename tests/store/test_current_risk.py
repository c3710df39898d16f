"""The current risk in the store (``current_risk``): sorted, filtered and paged in SQL by
``repo.find_patients`` on SQLite and PostgreSQL.

Hand values (tests/store/seed.py; model ``cox-0001`` is registered there, ``cox-0002``
here): at 2 years, HT-0001 0.20 (previous visit 0.15: rising by 0.05), as of its stored
2021-01-01 (identified: minus its +100 day shift, 2020-09-23); HT-0002 0.35 (previous
0.35: flat), as of 2019-05-05 (identified: plus 30 days, 2019-06-04); HT-0003 not
assessable. So by risk, highest first and unknown last: HT-0002, HT-0001, HT-0003.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, func, select

from analytics.errors import StoreError
from analytics.store import repo
from analytics.store.current_risk import (
    RiskRow,
    current_risk_version,
    read_current_risk,
    replace_current_risk,
    replace_patients_current_risk,
)
from analytics.store.schema import CurrentRisk, ModelRecord
from analytics.store.version import data_version
from tests.store.seed import seeded_store

Q = repo.PatientQuery
D = dt.date
M1 = dict(risk_model="cox-0001", risk_horizon=2.0)

#: fixture: a store holding the small seeded cohort
store = seeded_store

HAND = [RiskRow("HT-0001", 0.20, 0.15, 1.0, D(2021, 1, 1)),
        RiskRow("HT-0002", 0.35, 0.35, 0.0, D(2019, 5, 5)),
        RiskRow("HT-0003", float("nan"), 0.10, 1.0, None, "inr outside the training range")]


def _add_model(store, model_id: str) -> None:
    with store.session() as s:
        s.add(ModelRecord(model_id=model_id, kind="cox", event="decompensation", horizons=[2],
                          content_sha256="a" * 64, training_data_sha256="b" * 64,
                          artifact_path=f"models/{model_id}", features=[],
                          training_ranges={}, metrics={}, card={}, active=False))


@pytest.fixture
def scored(store):
    assert replace_current_risk(store, "cox-0001", 2.0, HAND, data_version="v1") == 3
    return store


def _names(store, query, identified=False) -> list[str]:
    return repo.find_patients(store, query, identified=identified)["pseudonym"].tolist()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(Q(sort="risk", **M1), ["HT-0002", "HT-0001", "HT-0003"], id="sort"),
        pytest.param(Q(sort="risk", limit=1, offset=1, **M1), ["HT-0001"], id="page"),
        pytest.param(Q(sort="risk", offset=2, **M1), ["HT-0003"], id="last-page"),
        pytest.param(Q(risk_at_least=0.2, sort="risk", **M1), ["HT-0002", "HT-0001"],
                     id="at-least-inclusive"),
        pytest.param(Q(risk_at_least=0.3, **M1), ["HT-0002"], id="at-least"),
        pytest.param(Q(rising=True, **M1), ["HT-0001"], id="rising"),
        pytest.param(Q(not_assessable=True, **M1), ["HT-0003"], id="not-assessable"),
        pytest.param(Q(had_event=True, sort="risk", **M1), ["HT-0001"], id="with-outcome"),
        pytest.param(Q(search="ht", sort="risk", limit=2, **M1), ["HT-0002", "HT-0001"],
                     id="search-page"),
    ],
)
@pytest.mark.parametrize("identified", [False, True])
def test_risk_sorts_filters_and_pages_in_sql_to_the_hand_order(scored, query, expected,
                                                               identified):
    assert _names(scored, query, identified) == expected
    assert repo.find_pseudonyms(scored, query, identified=identified) == expected
    whole = Q(**{**query.__dict__, "offset": 0, "limit": None})
    n_whole = len(_names(scored, whole, identified))
    assert repo.count_patients(scored, whole, identified=identified) == n_whole


def test_rows_carry_the_risk_and_its_as_of_date_as_the_viewer_sees_dates(scored):
    shown = repo.find_patients(scored, Q(sort="risk", **M1), identified=False)
    assert list(shown.columns[-len(repo.RISK_COLUMNS):]) == list(repo.RISK_COLUMNS)
    np.testing.assert_allclose(shown["risk"], [0.35, 0.20, np.nan])
    np.testing.assert_allclose(shown["previous_risk"], [0.35, 0.15, 0.10])
    assert shown["risk_as_of"].tolist()[:2] == [pd.Timestamp("2019-05-05"),
                                                 pd.Timestamp("2021-01-01")]
    assert pd.isna(shown["risk_as_of"].iloc[2])
    assert shown["risk_reason"].tolist() == [None, None, "inr outside the training range"]
    real = repo.find_patients(scored, Q(sort="risk", **M1), identified=True)
    # real dates: stored minus each patient's shift (-30 and +100 days)
    assert real["risk_as_of"].tolist()[:2] == [pd.Timestamp("2019-06-04"),
                                                pd.Timestamp("2020-09-23")]
    # without a model the list is as before: no risk columns
    assert "risk" not in repo.find_patients(scored, Q(), identified=False).columns


def test_a_new_model_shows_none_of_the_previous_models_risk(scored):
    _add_model(scored, "cox-0002")
    new = repo.find_patients(scored, Q(sort="risk", risk_model="cox-0002", risk_horizon=2.0),
                             identified=False)
    # no risk of its own yet: every risk unknown, the order falls back to the pseudonym
    assert new["pseudonym"].tolist() == ["HT-0001", "HT-0002", "HT-0003"]
    assert new["risk"].isna().all()
    assert repo.count_patients(scored, Q(risk_at_least=0.0, risk_model="cox-0002",
                                         risk_horizon=2.0), identified=False) == 0
    # another horizon of the same model is another set too
    assert _names(scored, Q(risk_at_least=0.0, risk_model="cox-0001", risk_horizon=1.0)) == []
    replace_current_risk(scored, "cox-0002", 2.0, [RiskRow("HT-0003", 0.9, 0.9)])
    assert _names(scored, Q(sort="risk", risk_model="cox-0002", risk_horizon=2.0),
                  False) == ["HT-0003", "HT-0001", "HT-0002"]
    # the first model's rows are untouched by the second's
    assert read_current_risk(scored, "cox-0001", 2.0)["HT-0002"].risk == 0.35


def test_a_rewrite_replaces_the_whole_set_and_drops_unregistered_models(scored):
    _add_model(scored, "cox-0002")
    replace_current_risk(scored, "cox-0002", 2.0, [RiskRow("HT-0001", 0.5)])
    with scored.session() as s:
        s.execute(delete(ModelRecord).where(ModelRecord.model_id == "cox-0002"))
    version = data_version(scored)
    replace_current_risk(scored, "cox-0001", 2.0, [RiskRow("HT-0003", 0.4, 0.3)])
    got = read_current_risk(scored, "cox-0001", 2.0)
    assert list(got) == ["HT-0003"] and math.isclose(got["HT-0003"].risk, 0.4)
    with scored.session() as s:
        models = set(s.execute(select(CurrentRisk.model_id).distinct()).scalars())
    assert models == {"cox-0001"}
    # derived rows: writing them does not change the cached data's version
    assert data_version(scored) == version


def test_the_stored_sets_data_version_is_known_only_when_every_row_shares_it(scored):
    # a reader skips its write only when the whole stored set is from its data version
    assert current_risk_version(scored, "cox-0001", 2.0) == "v1"
    assert current_risk_version(scored, "cox-0001", 1.0) is None  # nothing at 1 year
    replace_current_risk(scored, "cox-0001", 1.0, HAND[:1])  # no version given
    assert current_risk_version(scored, "cox-0001", 1.0) is None
    with scored.session() as s:
        s.execute(CurrentRisk.__table__.update()
                  .where(CurrentRisk.model_id == "cox-0001", CurrentRisk.horizon_years == 2.0,
                         CurrentRisk.risk == 0.35)
                  .values(data_version="v2"))
    assert current_risk_version(scored, "cox-0001", 2.0) is None


def test_one_patients_rewrite_keeps_the_others_and_the_set_reads_as_mixed(scored):
    # after an upload only its patients are scored again: their rows replaced at each
    # horizon given, in one transaction; the others' rows kept as they were
    replace_current_risk(scored, "cox-0001", 1.0, HAND[:1], data_version="v1")
    n = replace_patients_current_risk(scored, "cox-0001", {
        2.0: [RiskRow("HT-0001", 0.42, 0.20, 1.5, D(2022, 2, 2))],
        3.0: [RiskRow("HT-0001", 0.5)]}, data_version="v2")
    assert n == 2
    assert read_current_risk(scored, "cox-0001", 3.0) == {"HT-0001": RiskRow("HT-0001", 0.5)}
    got = read_current_risk(scored, "cox-0001", 2.0)
    assert sorted(got) == ["HT-0001", "HT-0002", "HT-0003"]
    assert got["HT-0001"] == RiskRow("HT-0001", 0.42, 0.20, 1.5, D(2022, 2, 2))
    assert got["HT-0002"] == HAND[1] and got["HT-0003"].reason == HAND[2].reason
    assert read_current_risk(scored, "cox-0001", 1.0)["HT-0001"].risk == 0.20
    # two versions in one set: a reader writes it whole again
    assert current_risk_version(scored, "cox-0001", 2.0) is None
    assert _names(scored, Q(sort="risk", **M1)) == ["HT-0001", "HT-0002", "HT-0003"]
    with pytest.raises(StoreError, match=r"patient HT-NOBODY is not in the store"):
        replace_patients_current_risk(scored, "cox-0001", {
            1.0: [RiskRow("HT-0001", 0.9)], 2.0: [RiskRow("HT-NOBODY", 0.5)]})
    # nothing of the failed write, at any horizon
    assert read_current_risk(scored, "cox-0001", 2.0)["HT-0001"].risk == 0.42
    assert read_current_risk(scored, "cox-0001", 1.0)["HT-0001"].risk == 0.20


def test_a_bad_row_writes_nothing(scored):
    with pytest.raises(StoreError, match=r"patient HT-NOBODY is not in the store"):
        replace_current_risk(scored, "cox-0001", 2.0,
                             [RiskRow("HT-0001", 0.9), RiskRow("HT-NOBODY", 0.5)])
    with pytest.raises(StoreError, match=r"model 'cox-9999' is not registered"):
        replace_current_risk(scored, "cox-9999", 2.0, [RiskRow("HT-0001", 0.9)])
    # the earlier set is whole: nothing of the failed writes
    assert read_current_risk(scored, "cox-0001", 2.0)["HT-0001"].risk == 0.20
    with scored.session() as s:
        assert s.execute(select(func.count()).select_from(CurrentRisk)).scalar_one() == 3


@pytest.mark.parametrize(
    ("query", "match"),
    [(Q(sort="risk"), "needs risk_model and risk_horizon"),
     (Q(rising=True), "needs risk_model"),
     (Q(risk_model="cox-0001"), "go together")])
def test_a_risk_query_without_its_model_is_refused(store, query, match):
    with pytest.raises(StoreError, match=match):
        repo.find_patients(store, query, identified=False)


def test_two_writers_of_one_models_risk_take_turns(scored):
    import threading

    sets = ([RiskRow("HT-0001", 0.1), RiskRow("HT-0002", 0.2)],
            [RiskRow("HT-0001", 0.3), RiskRow("HT-0003", 0.4)])
    start, errors = threading.Barrier(2), []

    def write(rows: list[RiskRow]) -> None:
        start.wait()
        try:
            for _ in range(5):
                replace_current_risk(scored, "cox-0001", 2.0, rows)
        except Exception as e:  # collected: the assertion below names it
            errors.append(e)

    threads = [threading.Thread(target=write, args=(rows,)) for rows in sets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    # one writer's whole set, never a mix
    got = {p: r.risk for p, r in read_current_risk(scored, "cox-0001", 2.0).items()}
    assert got in ({"HT-0001": 0.1, "HT-0002": 0.2}, {"HT-0001": 0.3, "HT-0003": 0.4})
