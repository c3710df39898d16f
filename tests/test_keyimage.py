"""Key images: windowing by hand, orientation-independent display, overlays, key slice."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.errors import FeatureError
from analytics.ingest.volume import MaskSet, Volume
from analytics.usecases.keyimage import (
    LIVER_WINDOW,
    NARROW_LIVER_WINDOW,
    OVERLAYS,
    Window,
    build_stack,
    png_bytes,
    render_slice,
    window_to_grey,
)
from analytics.viz.palette import OKABE_ITO


@pytest.fixture(scope="module")
def phantom():
    from analytics.synthetic import synthesize_visit_volume

    return synthesize_visit_volume(1.5, np.random.default_rng(11), shape=(30, 96, 96))


def test_liver_windows_are_in_the_documented_range():
    for w in (LIVER_WINDOW, NARROW_LIVER_WINDOW):
        assert 150 <= w.width <= 400 and 50 <= w.level <= 60
    assert LIVER_WINDOW.label == "Liver (W 400 / L 50 HU)"


@pytest.mark.parametrize(
    ("hu", "grey"),
    [(-150.0, 0), (-1000.0, 0), (250.0, 255), (3000.0, 255), (50.0, 128), (-50.0, 64),
     (150.0, 191)],
)
def test_window_maps_hu_linearly(hu, grey):
    # W 400 / L 50: [-150, 250] HU -> [0, 255]; (hu + 150) * 255 / 400, rounded
    assert window_to_grey(np.array([hu]), LIVER_WINDOW)[0] == grey


def test_key_slice_is_the_largest_liver_cross_section(phantom):
    vol, masks = phantom.to_volume(), phantom.to_maskset()
    stack = build_stack(vol, masks)
    liver = masks.get("liver")
    areas = liver.sum(axis=(1, 2))
    # the phantom is head-first axial: canonical order equals array order
    lo = max(0, int(np.flatnonzero(areas)[0]) - 2)
    assert stack.key_index + lo == int(np.argmax(areas))
    assert stack.structures == ("liver", "spleen", "liver_vessels")
    assert stack.mask_source == "seg" and not stack.automatic
    z, y, x = vol.spacing_mm
    assert stack.liver_area_cm2(stack.key_index) == pytest.approx(areas.max() * y * x / 100)
    # slice positions: LPS z of the original slices
    k0 = lo + stack.key_index
    assert stack.z_mm[stack.key_index] == pytest.approx(vol.origin_mm[2] + k0 * z)


def test_feet_first_and_transposed_acquisitions_display_the_same(phantom):
    vol, masks = phantom.to_volume(), phantom.to_maskset()
    ref = build_stack(vol, masks)
    # feet-first: slices stored superior to inferior, z axis pointing down
    flipped = Volume(array=vol.array[::-1].copy(), spacing_mm=vol.spacing_mm,
                     origin_mm=(vol.origin_mm[0], vol.origin_mm[1],
                                vol.origin_mm[2] + (vol.shape[0] - 1) * vol.spacing_mm[0]),
                     direction=np.diag([1.0, 1.0, -1.0]), modality="CT")
    fmasks = MaskSet({k: v[::-1].copy() for k, v in masks.masks.items()})
    # rows and columns swapped: array x runs along patient P, y along patient L
    swapped = Volume(array=np.ascontiguousarray(vol.array.transpose(0, 2, 1)),
                     spacing_mm=(vol.spacing_mm[0], vol.spacing_mm[2], vol.spacing_mm[1]),
                     origin_mm=vol.origin_mm,
                     direction=np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
                     modality="CT")
    smasks = MaskSet({k: np.ascontiguousarray(v.transpose(0, 2, 1))
                      for k, v in masks.masks.items()})
    for other, om in ((flipped, fmasks), (swapped, smasks)):
        st = build_stack(other, om)
        assert st.key_index == ref.key_index
        np.testing.assert_array_equal(st.image, ref.image)
        np.testing.assert_array_equal(st.labels, ref.labels)
        np.testing.assert_allclose(st.z_mm, ref.z_mm)


def test_patient_right_is_on_the_viewers_left(phantom):
    stack = build_stack(phantom.to_volume(), phantom.to_maskset())
    lab = stack.labels[stack.key_index]
    cols = np.arange(lab.shape[1])
    liver_x = cols[(lab & 1).astype(bool).any(axis=0)].mean()
    spleen_x = cols[(lab & 2).astype(bool).any(axis=0)].mean()
    assert liver_x < spleen_x  # the liver (patient's right) is drawn on the left


def test_overlay_blends_fill_and_draws_the_outline(phantom):
    stack = build_stack(phantom.to_volume(), phantom.to_maskset())
    k = stack.key_index
    rgb = render_slice(stack, k, LIVER_WINDOW)
    plain = render_slice(stack, k, LIVER_WINDOW, overlay=False)
    grey = window_to_grey(stack.image[k], LIVER_WINDOW).astype(float)
    liver = (stack.labels[k] == 1)  # liver only, no vessel bit
    from scipy import ndimage

    inner = liver & ndimage.binary_erosion(liver, iterations=2)
    i, j = np.argwhere(inner)[0]
    colour = np.array([int(OKABE_ITO["bluish_green"][n:n + 2], 16) for n in (1, 3, 5)])
    np.testing.assert_array_equal(rgb[i, j], np.rint(0.78 * grey[i, j] + 0.22 * colour))
    edge = liver & ~ndimage.binary_erosion(liver)
    i, j = np.argwhere(edge)[0]
    np.testing.assert_array_equal(rgb[i, j], colour)
    outside = stack.labels[k] == 0
    np.testing.assert_array_equal(rgb[outside], plain[outside])
    assert (plain[..., 0] == plain[..., 1]).all()  # no overlay: grey


def test_in_plane_anisotropic_pixels_are_made_square():
    arr = np.zeros((4, 10, 20), np.float32)
    arr[:, 2:6, 5:15] = 60.0
    liver = arr > 0
    vol = Volume(array=arr, spacing_mm=(5.0, 1.0, 0.5), modality="CT")
    stack = build_stack(vol, MaskSet({"liver": liver}))
    assert stack.pixel_mm == 0.5
    assert stack.image.shape == (4, 20, 20)  # rows doubled to 0.5 mm
    assert stack.liver_area_cm2(0) == pytest.approx(4 * 1.0 * 10 * 0.5 / 100)


def test_long_liver_is_subsampled_to_the_slice_cap():
    arr = np.full((200, 16, 16), 40.0, np.float32)
    liver = np.zeros(arr.shape, bool)
    liver[20:180, 4:12, 4:12] = True
    stack = build_stack(Volume(array=arr, spacing_mm=(1.0, 1.0, 1.0)),
                        MaskSet({"liver": liver}), max_slices=32)
    assert stack.n_slices == 32
    assert stack.z_mm[0] == pytest.approx(18.0) and stack.z_mm[-1] == pytest.approx(181.0)


def test_without_any_mask_nothing_is_segmented_at_display_time(phantom):
    stack = build_stack(phantom.to_volume(), None)
    assert stack.structures == () and not stack.automatic and stack.mask_source is None
    assert stack.labels.max() == 0
    assert any("no liver mask" in n for n in stack.notes)


def test_stored_automatic_masks_are_drawn_as_given_and_labelled_automatic(phantom):
    ref = phantom.to_maskset()
    auto = MaskSet({"liver": ref.get("liver"), "spleen": ref.get("spleen")}, source="auto",
                   automatic=True, method="classical-v3")
    stack = build_stack(phantom.to_volume(), None, automatic=auto,
                        automatic_status={"liver": "measured",
                                          "spleen": "withheld: volume 900 mL is implausible"},
                        automatic_version="1.3.0")
    delivered = build_stack(phantom.to_volume(), MaskSet({"liver": ref.get("liver"),
                                                          "spleen": ref.get("spleen")}))
    # exactly the stored outline, voxel for voxel: nothing re-segmented
    np.testing.assert_array_equal(stack.labels, delivered.labels)
    assert stack.automatic and stack.mask_source == "auto"
    assert stack.labels_text == {
        "liver": "automatic (classical-v3, HepaTrack 1.3.0)",
        "spleen": "automatic, withheld: volume 900 mL is implausible"}
    assert delivered.labels_text == {"liver": "delivered (seg)", "spleen": "delivered (seg)"}


def test_a_delivered_mask_wins_over_the_automatic_one_of_the_same_organ(phantom):
    ref = phantom.to_maskset()
    empty_box = np.zeros_like(ref.get("liver"))
    empty_box[10:12, 40:50, 40:50] = True
    auto = MaskSet({"liver": empty_box, "spleen": ref.get("spleen")}, source="auto",
                   automatic=True, method="classical-v3")
    stack = build_stack(phantom.to_volume(), MaskSet({"liver": ref.get("liver")}),
                        automatic=auto, automatic_status={"spleen": "rejected: cuts the kidney"})
    assert stack.labels_text == {"liver": "delivered (seg)",
                                 "spleen": "automatic, rejected: cuts the kidney"}
    delivered = build_stack(phantom.to_volume(), MaskSet({"liver": ref.get("liver")}))
    np.testing.assert_array_equal(stack.labels & 1, delivered.labels & 1)


def test_mr_uses_the_livers_percentile_window():
    rng = np.random.default_rng(0)
    arr = rng.uniform(0, 1000, (3, 20, 20)).astype(np.float32)
    liver = np.zeros(arr.shape, bool)
    liver[:, 5:15, 5:15] = True
    stack = build_stack(Volume(array=arr, spacing_mm=(3.0, 1.0, 1.0), modality="MR"),
                        MaskSet({"liver": liver}))
    lo, hi = np.percentile(stack.image[(stack.labels & 1).astype(bool)], [1, 99])
    grey = render_slice(stack, 0, overlay=False)[..., 0]
    np.testing.assert_array_equal(grey, window_to_grey(stack.image[0],
                                                       Window(hi - lo, (hi + lo) / 2)))


def test_png_round_trips():
    from io import BytesIO

    from PIL import Image

    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[1, 2] = (1, 2, 3)
    back = np.asarray(Image.open(BytesIO(png_bytes(rgb))))
    np.testing.assert_array_equal(back, rgb)


@pytest.mark.parametrize(
    ("array", "match"),
    [pytest.param(np.zeros((4, 4), np.float32), r"key image needs a 3-D volume", id="2-d"),
     pytest.param(np.zeros((0, 4, 4), np.float32), r"key image needs a 3-D volume",
                  id="empty")],
)
def test_bad_volumes_are_refused(array, match):
    with pytest.raises(FeatureError, match=match):
        build_stack(Volume(array=array, spacing_mm=(1.0, 1.0, 1.0)), None)


def test_degenerate_direction_is_refused():
    vol = Volume(array=np.zeros((2, 3, 3), np.float32), spacing_mm=(1.0, 1.0, 1.0),
                 direction=np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(FeatureError, match="degenerate"):
        build_stack(vol, None)


def test_slice_index_out_of_range(phantom):
    stack = build_stack(phantom.to_volume(), phantom.to_maskset())
    with pytest.raises(IndexError, match=r"slice 999: the stack has slices 0-"):
        render_slice(stack, 999)


def test_overlay_table_uses_okabe_ito():
    assert {c for _n, _b, c, _l in OVERLAYS} <= set(OKABE_ITO.values())
