"""The Patient page's picker: a search over the store, the current and recent patients.

On the trained dashboard home (36 patients, more than the picker's 20): the expected
patients are read off the store's own list (``repo.list_patients``), sorted by hand.
"""

from __future__ import annotations

import pandas as pd
import pytest

from analytics.config import load_settings
from analytics.store import open_store, repo
from tests.app.conftest import new_app, open_page
from tests.dashboard_data import copied_home
from ui.loaders import PICKER_LIMIT
from ui.session import Viewer

#: fixture: a private copy of the trained dashboard home
home = copied_home

CLINICIAN = Viewer("dr.grey", "clinician", "s-clin")
RESEARCHER = Viewer("ana.res", "researcher", "s-res")
PICKER, SEARCH = "patient:pseudonym", "patient:find"


@pytest.fixture
def listed(home) -> pd.DataFrame:
    store = open_store(load_settings(home))
    try:
        return repo.list_patients(store, identified=True)
    finally:
        store.dispose()


def _patient_page(viewer: Viewer):
    return open_page("pages/patient.py", viewer)


def _search(at, text: str):
    at.text_input(key=SEARCH).set_value(text).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _captions(at) -> list[str]:
    return [c.value for c in at.caption]


def test_a_clinician_types_an_id_or_a_name_and_picks_among_several(home, listed):
    names = sorted(listed["pseudonym"])
    assert len(names) > PICKER_LIMIT + 1
    at = _patient_page(CLINICIAN)
    picker = at.selectbox(key=PICKER)
    # the first patient, and only the first 20 offered: never the whole list
    assert picker.value == names[0]
    assert len(picker.options) == PICKER_LIMIT
    last = listed.set_index("pseudonym").loc[names[-1]]
    assert all(names[-1] not in o for o in picker.options)
    # the real patient ID, typed exactly (any case), opens that patient at once
    _search(at, str(last["patient_id"]).lower())
    assert at.selectbox(key=PICKER).value == names[-1]
    assert at.query_params["patient"] == names[-1]
    # a text many patients share: the first 20 offered after the current one, no switch
    _search(at, "ht-")
    picker = at.selectbox(key=PICKER)
    assert picker.value == names[-1]
    assert f"The first {PICKER_LIMIT} matches: type more to narrow them." in _captions(at)
    assert [o.split(" · ")[0] for o in picker.options] == [names[-1], *names[:PICKER_LIMIT]]
    picker.select(names[3]).run()
    assert at.selectbox(key=PICKER).value == names[3]
    assert at.query_params["patient"] == names[3]
    # the patient opened before stays offered (recent), though the search does not find it
    assert any(o.startswith(names[-1]) for o in at.selectbox(key=PICKER).options)
    # a family name only one patient has opens that patient; the label shows the name
    family = listed["patient_name"].str.split("^").str[0]
    unique = family[family.map(family.value_counts()) == 1].index[-1]
    _search(at, family[unique].upper())
    chosen = listed.loc[unique, "pseudonym"]
    assert at.selectbox(key=PICKER).value == chosen
    label = next(o for o in at.selectbox(key=PICKER).options if o.startswith(chosen))
    assert " · " in label


def test_a_researcher_finds_pseudonyms_only_and_sees_no_identifiers(home, listed):
    names = sorted(listed["pseudonym"])
    real = {str(v) for v in listed["patient_id"].dropna()}
    people = {str(v) for v in listed["patient_name"].dropna()}
    at = _patient_page(RESEARCHER)
    first = at.selectbox(key=PICKER).value
    # a real name or patient ID finds nobody in a pseudonymised view
    for text in (str(listed.loc[5, "patient_name"]).split("^")[0], str(listed.loc[5,
                                                                                 "patient_id"])):
        _search(at, text)
        assert f"No patient matches “{text}”." in _captions(at)
        assert at.selectbox(key=PICKER).value == first
    # a pseudonym opens the patient; every label is a bare pseudonym
    _search(at, names[-2].lower())
    picker = at.selectbox(key=PICKER)
    assert picker.value == names[-2]
    _search(at, "ht-")
    shown = set(at.selectbox(key=PICKER).options)
    assert shown <= set(names)
    texts = " ".join(shown | set(_captions(at)))
    assert not any(v in texts for v in real | people)


def test_a_link_opens_a_patient_beyond_the_first_twenty(home, listed):
    names = sorted(listed["pseudonym"])
    at = new_app(RESEARCHER)
    at.query_params["patient"] = names[-1]
    at.run()
    at.switch_page("pages/patient.py").run()
    assert not at.exception
    assert at.selectbox(key=PICKER).value == names[-1]
    assert at.query_params["patient"] == names[-1]
