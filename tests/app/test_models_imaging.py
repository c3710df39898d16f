"""The Models page's "What imaging adds" under AppTest: an admin and a researcher open the
page, find the plain sentence for the sample model (no imaging feature entered it), choose
a model trained with an informative imaging feature and find the comparison table with the
stored numbers."""

from __future__ import annotations

import shutil

import pytest

from analytics.config import load_settings
from analytics.store import open_store
from analytics.usecases.model_admin import model_metrics
from tests import dashboard_data
from tests.app.conftest import new_app
from ui.session import Viewer

RESEARCHER = Viewer("ana.res", "researcher", "s-res")
ADMIN = Viewer("root.admin", "admin", "s-admin")
TABLE_COLUMN = "C-index difference (95% CI)"


@pytest.fixture(scope="module")
def imaging_template(tmp_path_factory):
    """The dashboard home plus an inactive model trained on an imaging cohort."""
    from tests.models.imaging_compare_sim import train_imaging_model

    t = dashboard_data.template(tmp_path_factory)
    home = dashboard_data.copy_home(t, tmp_path_factory.mktemp("imaging-app") / "home")
    settings = load_settings(home)
    store = open_store(settings)
    try:
        trained = train_imaging_model(store, settings, n_patients=120, n_bootstrap=30)
    finally:
        store.dispose()
    return t, home, trained


@pytest.fixture
def home(imaging_template, tmp_path, monkeypatch):
    _t, template_home, _trained = imaging_template
    h = tmp_path / "home"
    shutil.copytree(template_home, h)
    monkeypatch.setenv("HEPATRACK_HOME", str(h))
    monkeypatch.delenv("HEPATRACK_DB_URL", raising=False)
    return h


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [str(e.value) for e in at.error]


def _models_page(viewer: Viewer):
    at = new_app(viewer).run()
    at.switch_page("pages/models.py").run()
    _ok(at)
    return at


def _comparison_tables(at) -> list:
    return [d.value for d in at.dataframe if TABLE_COLUMN in d.value.columns]


@pytest.mark.parametrize("viewer", [ADMIN, RESEARCHER], ids=["admin", "researcher"])
def test_models_page_shows_what_imaging_adds(home, imaging_template, viewer):
    t, _h, trained = imaging_template
    at = _models_page(viewer)
    # the active sample model: CT for 2 of 36 patients, so no imaging feature in it
    assert at.selectbox(key="models:model").value == t.model_id
    assert "What imaging adds" in [s.value for s in at.subheader]
    infos = [str(i.value) for i in at.info]
    assert any(i.startswith("No imaging feature entered the model: nothing to compare")
               for i in infos), infos
    assert not _comparison_tables(at)  # a sentence, not a table of zeros

    at.selectbox(key="models:model").select(trained["model_id"]).run()
    _ok(at)
    tables = _comparison_tables(at)
    assert len(tables) == 1
    table = tables[0]
    assert table["Patients"].tolist() == ["All patients", "Patients with scans"]
    for col in ("C-index with imaging", "C-index without imaging", TABLE_COLUMN,
                "td-AUC 1 y difference (95% CI)", "td-AUC 3 y with imaging", "n patients",
                "n events"):
        assert col in table.columns, col
    settings = load_settings(home)
    store = open_store(settings)
    try:
        stored = model_metrics(store, trained["model_id"])["metrics"]["imaging_comparison"]
    finally:
        store.dispose()
    for i, key in enumerate(("all", "with_scans")):
        part = stored[key]
        d = part["difference"]
        lo, hi = d["c_index_ci"]
        assert table[TABLE_COLUMN].iloc[i] == f"{d['c_index']:+.3f} ({lo:+.3f} to {hi:+.3f})"
        assert table["C-index with imaging"].iloc[i] == f"{part['with_imaging']['c_index']:.3f}"
        assert int(table["n patients"].iloc[i]) == part["n_patients"]
        assert int(table["n events"].iloc[i]) == part["n_events"]
    assert "models:imaging_plot" in {c.key for c in at.get("plotly_chart")}
    refs = [d.value for d in at.dataframe if "Predictor" in d.value.columns
            and "Coverage" in d.value.columns and "Patients" in d.value.columns]
    assert refs and "Oracle (true hazard)" in refs[0]["Predictor"].tolist()
    assert not [i for i in at.info if "nothing to compare" in str(i.value)]
    card = [str(m.value) for m in at.markdown if "#### What imaging adds" in str(m.value)]
    assert card and "**Patients with scans**" in card[0]
