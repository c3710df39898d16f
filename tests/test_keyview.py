"""Stored key images: the stored key view is the freshly rendered key slice pixel for
pixel, is served without reading the series again, and is rendered again (never served
stale) when the series or its masks change."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from analytics.errors import IngestError
from analytics.ingest.pipeline import ingest_sources
from analytics.store import key_images
from analytics.store.schema import Mask, MaskRejection, Series
from analytics.store.series_admin import remove_series
from analytics.usecases import keyview
from analytics.usecases.keyimage import load_key_image, render_slice
from tests.dashboard_data import open_copy, template_home

template = template_home


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _uid(t) -> str:
    return sorted(t.series)[0]


def test_the_stored_key_image_equals_the_freshly_rendered_one_pixel_for_pixel(
        template, tmp_path, monkeypatch):
    uid = _uid(template)
    with open_copy(template, tmp_path / "home") as (settings, store):
        first = keyview.key_view(store, settings, uid)
        fresh = load_key_image(store, settings, uid)

        def no_read(*_a, **_k):
            raise AssertionError("the series was read again")

        monkeypatch.setattr(keyview, "load_key_image", no_read)
        stored = keyview.key_view(store, settings, uid)
    assert stored == first
    want = render_slice(fresh, fresh.key_index)
    assert np.array_equal(_pixels(stored.png), want)
    # the slider's facts: the same slices, key slice, positions, areas, legend and notes
    assert (stored.n_slices, stored.key_index) == (fresh.n_slices, fresh.key_index)
    assert stored.z_mm == tuple(float(z) for z in fresh.z_mm)
    assert [stored.liver_area_cm2(k) for k in range(stored.n_slices)] == [
        fresh.liver_area_cm2(k) for k in range(fresh.n_slices)]
    assert stored.liver_area_cm2(stored.key_index) > 0
    assert (stored.structures, stored.labels_text, list(stored.notes), stored.pixel_mm) == (
        fresh.structures, fresh.labels_text, fresh.notes, fresh.pixel_mm)
    assert stored.structures[:2] == ("liver", "spleen")
    assert stored.labels_text["liver"] == "delivered (seg)"


def test_a_series_replaced_without_its_masks_is_rendered_again_not_served_stale(
        template, tmp_path):
    uid = _uid(template)
    ct_dir = template.synth / template.series[uid]["series_dir"]
    with open_copy(template, tmp_path / "home") as (settings, store):
        before = keyview.key_view(store, settings, uid)
        assert "liver" in before.structures
        remove_series(store, settings, uid)
        assert key_images.read(store, uid) is None  # removed with the series
        with pytest.raises(IngestError, match=f"series {uid} is not in the store"):
            keyview.key_view(store, settings, uid)
        report = ingest_sources([str(ct_dir)], settings, store)  # the CT, not its SEG
        assert [s["series_uid"] for s in report.series] == [uid]
        after = keyview.key_view(store, settings, uid)
        fresh = load_key_image(store, settings, uid)
    assert after.version != before.version
    assert after.structures == () and after.labels_text == {}
    assert after.notes == ("no liver mask: showing the whole series without a liver outline",)
    assert np.array_equal(_pixels(after.png), render_slice(fresh, fresh.key_index))
    assert not np.array_equal(_pixels(after.png), _pixels(before.png))


def test_a_view_stored_for_other_inputs_is_not_served(template, tmp_path, monkeypatch):
    uid = _uid(template)
    with open_copy(template, tmp_path / "home") as (settings, store):
        view = keyview.key_view(store, settings, uid)
        # a stored view whose inputs' version is not the series' current one (a mask
        # replaced in place, a review): rendered again and stored anew
        stale = keyview.to_bytes(keyview.KeyView(**{**view.__dict__, "version": "0" * 64,
                                                    "png": b"stale"}))
        key_images.write(store, uid, stale)
        calls = []
        real = keyview.load_key_image

        def counted(*a, **k):
            calls.append(a[-1])
            return real(*a, **k)

        monkeypatch.setattr(keyview, "load_key_image", counted)
        again = keyview.key_view(store, settings, uid)
        assert calls == [uid] and again.png == view.png
        assert keyview.from_bytes(key_images.read(store, uid)) == view


def test_stored_bytes_of_another_format_are_not_read():
    assert keyview.from_bytes(b"HTKV" + b"\x63\x00\x00\x00" + b"\x00" * 8) is None
    assert keyview.from_bytes(b"not a key view") is None


def test_warm_up_renders_each_patients_newest_series_once(template, tmp_path):
    with open_copy(template, tmp_path / "home") as (settings, store):
        first = keyview.render_missing(store, settings)
        again = keyview.render_missing(store, settings)
        newest = key_images.newest_series(store, 100)
    # dashboard_data: two imaging patients, so two newest series
    assert len(newest) == len(template.imaging) == 2
    assert first == {"rendered": 2, "current": 0, "failed": 0}
    assert again == {"rendered": 0, "current": 2, "failed": 0}


def test_a_server_start_on_unchanged_data_checks_no_series_again(template, tmp_path,
                                                                  monkeypatch):
    with open_copy(template, tmp_path / "home") as (settings, store):
        paused: list[int] = []
        first = keyview.render_missing_if_changed(store, settings,
                                                  pause=lambda: paused.append(1))
        assert first == {"rendered": 2, "current": 0, "failed": 0}
        assert len(paused) == 2  # one quiet moment asked for before each series

        def no_check(*_a, **_k):
            raise AssertionError("a series was checked again on unchanged data")

        with monkeypatch.context() as m:
            m.setattr(key_images, "newest_series", no_check)
            m.setattr(key_images, "inputs_version", no_check)
            assert keyview.render_missing_if_changed(store, settings) == {"unchanged": 1}
        # the pass over every series is still what render_missing does
        assert keyview.render_missing(store, settings) == {
            "rendered": 0, "current": 2, "failed": 0}


def test_a_changed_series_or_a_forgotten_key_image_is_looked_at_on_the_next_start(
        template, tmp_path):
    with open_copy(template, tmp_path / "home") as (settings, store):
        keyview.render_missing_if_changed(store, settings)
        uid = key_images.newest_series(store, 100)[0]  # one the pass renders
        before = keyview.from_bytes(key_images.read(store, uid))
        # an outline review of the series' mask: a write to a watched table
        with store.session() as s:
            mask_id = s.scalar(select(Mask.id).join(Series, Mask.series_id == Series.id)
                               .where(Series.series_uid == uid))
            s.add(MaskRejection(mask_id=mask_id, organ="spleen", reason="test",
                                rejected_by="dr.grey"))
        again = keyview.render_missing_if_changed(store, settings)
        assert again == {"rendered": 1, "current": 1, "failed": 0}
        after = keyview.from_bytes(key_images.read(store, uid))
        assert after.version != before.version
        assert after.version == key_images.inputs_version(store, uid)

        assert key_images.forget(store, uid) == 1
        assert keyview.render_missing_if_changed(store, settings) == {
            "rendered": 1, "current": 1, "failed": 0}
        assert keyview.render_missing_if_changed(store, settings) == {"unchanged": 1}


def test_a_pass_cut_short_by_its_time_budget_is_not_taken_for_a_complete_one(
        template, tmp_path):
    with open_copy(template, tmp_path / "home") as (settings, store):
        cut = keyview.render_missing_if_changed(store, settings, budget_s=-1.0)
        assert cut == {"rendered": 0, "current": 0, "failed": 0}
        assert key_images.last_pass(store) is None
        assert keyview.render_missing_if_changed(store, settings) == {
            "rendered": 2, "current": 0, "failed": 0}
