"""End to end on the synthetic cohort: parse, assemble, read the SEG, compare with truth.json."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.ingest.masks import mask_references, read_mask
from analytics.ingest.reader import ParsedInstance
from analytics.ingest.series import build_volume, check_series
from analytics.ingest.sources import iter_local_source
from analytics.synthetic import CohortConfig, generate_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    cfg = CohortConfig(n_patients=1, imaging_patients=1, max_scans_per_patient=1,
                       portal_venous_fraction=1.0, descending_fraction=1.0, seed=3)
    out = tmp_path_factory.mktemp("synthetic")
    manifest = generate_cohort(out, cfg)
    return out, manifest.truth()["series"][0]


@pytest.fixture(scope="module")
def ingested(cohort, parser, limits):
    out, truth = cohort
    images = list(parser.parse_many(iter_local_source(out / truth["series_dir"], limits)))
    (seg,) = list(parser.parse_many(iter_local_source(out / truth["seg_file"], limits)))
    assert all(isinstance(i, ParsedInstance) and i.kind == "image" for i in images)
    assert isinstance(seg, ParsedInstance) and seg.kind == "seg"
    vol = build_volume(images, limits, decoder=parser)
    return images, seg, vol


def test_series_geometry_matches_truth(cohort, ingested, limits):
    _, truth = cohort
    images, _, vol = ingested
    assert len(images) == truth["instances"]
    check = check_series(images, limits)
    positions = check.geometry["slice_positions_mm"]
    assert positions == sorted(positions)  # written in descending order, read along the normal
    assert list(vol.shape) == truth["shape"]
    assert vol.spacing_mm == pytest.approx(tuple(truth["spacing_mm"]))
    assert vol.series_uid == truth["series_uid"]
    assert vol.contrast_phase == truth["contrast_phase"] == "portal_venous"


def test_seg_volumes_equal_truth_exactly(cohort, ingested):
    _, truth = cohort
    _, seg, vol = ingested
    refs = mask_references(seg.header)
    assert refs["series_uids"] == [truth["series_uid"]]
    assert refs["frame_of_reference_uid"] == truth["frame_of_reference_uid"]
    masks = read_mask(seg.data, "seg", vol)
    voxel_ml = vol.voxel_volume_ml
    assert masks.masks["liver"].sum() * voxel_ml == pytest.approx(truth["liver_volume_ml"],
                                                                    abs=voxel_ml / 2)
    assert masks.masks["spleen"].sum() * voxel_ml == pytest.approx(truth["spleen_volume_ml"],
                                                                     abs=voxel_ml / 2)
    assert masks.masks["liver_vessels"].sum() == truth["voxel_counts"]["liver_vessels"]


def test_liver_attenuation_matches_truth(cohort, ingested):
    _, truth = cohort
    _, seg, vol = ingested
    m = read_mask(seg.data, "seg", vol).masks
    parenchyma = m["liver"] & ~m["liver_vessels"] & ~m.get("lesion", np.zeros_like(m["liver"]))
    values = vol.array[parenchyma]
    # noise-free truth; the image adds Gaussian noise, so the mean is off by ~sd/sqrt(n)
    tolerance = 4 * truth["noise_sd_hu"] / np.sqrt(values.size) + 0.5
    assert float(values.mean()) == pytest.approx(truth["liver_hu_mean"], abs=tolerance)
