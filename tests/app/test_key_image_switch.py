"""Patient page: a switch to a patient with a CT shows the key image stored for the series
(the series is not read for it); the slider, the window and the outlines toggle still
render the other slices from the series."""

from __future__ import annotations

from analytics.config import load_settings
from analytics.store import key_images, open_store
from analytics.usecases import keyview
from tests.app.conftest import new_app, open_patient
from tests.dashboard_data import copied_home, template_home
from ui.session import Viewer

#: fixtures: a private copy of the trained dashboard home, and its template
home, template = copied_home, template_home

CLINICIAN = Viewer("dr.grey", "clinician", "s-clin")


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _captions(at) -> str:
    return " ".join(str(c.value) for c in at.caption)


def test_a_switch_shows_the_stored_key_image_and_the_slider_still_works(
        home, template, monkeypatch):
    first, second = template.imaging[:2]
    settings = load_settings(home)
    store = open_store(settings)
    try:
        # as the server's warm-up does: each patient's newest series rendered ahead
        assert keyview.render_missing(store, settings)["rendered"] == 2
        at = new_app(CLINICIAN)
        at.query_params["patient"] = first
        at.run()
        at.switch_page("pages/patient.py").run()
        _ok(at)
        assert len(at.get("image")) == 1

        real, reads = keyview.load_key_image, []

        def counted(*a, **k):
            reads.append(a[-1])
            return real(*a, **k)

        monkeypatch.setattr(keyview, "load_key_image", counted)
        open_patient(at, second)
        _ok(at)
        assert len(at.get("image")) == 1 and reads == []  # the stored key image
        uid = at.selectbox(key=f"patient:series-{second}").value
        view = keyview.from_bytes(key_images.read(store, uid))
        slider = at.slider(key=f"patient:slice-{uid}")
        assert (slider.value, int(slider.max)) == (view.key_index + 1, view.n_slices)
        captions = _captions(at)
        assert f"Slice {view.key_index + 1} of the {view.n_slices} around the liver" in captions
        assert "Overlay: Liver (bluish green), Spleen (orange)" in captions
        assert (f"z {view.z_mm[view.key_index]:.0f} mm · liver "
                f"{view.liver_area_cm2(view.key_index):.0f} cm²") in captions

        # another slice is rendered from the series, on demand
        at.slider(key=f"patient:slice-{uid}").set_value(1).run()
        _ok(at)
        assert len(at.get("image")) == 1
        captions = _captions(at)
        assert f"Slice 1 of the {view.n_slices} around the liver" in captions
        # the first slice is a margin slice below the liver: no liver in it
        assert f"· z {view.z_mm[0]:.0f} mm · liver 0 cm² · pixel" in captions
        at.radio(key="patient:window").set_value("narrow").run()
        at.toggle(key="patient:overlay").set_value(False).run()
        _ok(at)
        assert len(at.get("image")) == 1
    finally:
        store.dispose()
