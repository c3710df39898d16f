"""The series check of an ultrasound series: frames in instance order, never a volume.

Kept apart from :mod:`analytics.ingest.ultrasound`, which the parse worker imports and which
must stay light.
"""

from __future__ import annotations

from analytics.ingest.series import SeriesCheck
from analytics.ingest.ultrasound import calibration


def check_ultrasound_series(instances: list, limits=None) -> SeriesCheck:
    """The series check of an ultrasound series: frames in instance order, no volume.

    Parameters
    ----------
    instances
        ``ParsedInstance`` objects of one series (kind ``ultrasound``).
    limits
        Unused (the per-file pixel budget was checked at parse); kept for the same call
        shape as :func:`analytics.ingest.series.check_series`.

    Returns
    -------
    SeriesCheck
        ``ok`` unless an instance has a pixel problem; ``geometry`` holds ``n_slices``
        (total frames), ``rows``/``cols`` of the first file and ``ultrasound`` (frames per
        instance and the first file's calibration).
    """
    ordered = sorted(instances, key=lambda p: (p.instance_number if p.instance_number
                                               is not None else 1 << 30,
                                               str(p.sop_instance_uid)))
    broken = [p for p in ordered if p.pixel_problem]
    if broken:
        why = f"{len(broken)} of {len(ordered)} ultrasound files have unreadable pixel data"
        return SeriesCheck(ok=False, reason=f"{why}: {broken[0].name}: {broken[0].pixel_problem}",
                           stored_reason=f"{why} ({broken[0].pixel_problem})",
                           instances=ordered, category="incoherent")
    frames = [(i, f) for i, p in enumerate(ordered) for f in range(max(1, p.n_frames))]
    first = ordered[0]
    cal = calibration(first.header)
    geometry = {"n_slices": len(frames), "rows": first.info.get("rows"),
                "cols": first.info.get("cols"), "modality": "US",
                "ultrasound": {"frames_per_instance": [max(1, p.n_frames) for p in ordered],
                               **cal, "pixels_outside_regions_blanked": bool(cal["regions"])}}
    return SeriesCheck(ok=True, reason=None, instances=ordered, geometry=geometry,
                       frames=frames)


def is_ultrasound(instances: list) -> bool:
    return bool(instances) and all(getattr(p, "kind", None) == "ultrasound" for p in instances)


#: the ultrasound measurements, made on a chosen frame with ROIs a sonographer places
US_MEASUREMENTS = {"us_hepatorenal_index": "hepatorenal index",
                   "us_liver_texture": "liver echo texture (first-order and GLCM)",
                   "us_liver_depth_slope": "depth-intensity slope (uncalibrated)"}
_BY_HAND = "on a frame a sonographer chooses, with ROIs placed on the Ultrasound page"


def planned_measurements(geometry: dict | None) -> dict:
    """Which ultrasound measurements a stored series allows, and why not the others.

    Returns
    -------
    dict
        ``will``: list of ``{name, label, how}``; ``cannot``: list of ``{name, label,
        reason}``. Empty
        lists when ``geometry`` is not an ultrasound series'.
    """
    us = (geometry or {}).get("ultrasound")
    if not us:
        return {"will": [], "cannot": []}
    if not us.get("regions"):
        why = ("no 2-D region in the Sequence of Ultrasound Regions (0018,6011): no "
               "calibration and no image region to place ROIs in")
        return {"will": [], "cannot": [{"name": n, "label": t, "reason": why}
                                       for n, t in US_MEASUREMENTS.items()]}
    if not us.get("calibrated"):
        why = ("the image region has no physical delta X/Y in cm (0018,602C/602E with units "
               "(0018,6024/6026) = 3): ROIs cannot be placed or depths compared in mm")
        return {"will": [], "cannot": [{"name": n, "label": t, "reason": why}
                                       for n, t in US_MEASUREMENTS.items()]}
    return {"will": [{"name": n, "label": t, "how": _BY_HAND}
                     for n, t in US_MEASUREMENTS.items()], "cannot": []}


def ultrasound_entry(geometry: dict | None) -> dict:
    """The keys an ingest report adds for an ultrasound series (none for CT/MR)."""
    us = (geometry or {}).get("ultrasound")
    if not us:
        return {}
    return {"pixels_blanked_outside_region": bool(us.get("pixels_outside_regions_blanked")),
            "calibrated": bool(us.get("calibrated")),
            "measurements": planned_measurements(geometry)}


def measurement_words(series: dict) -> str:
    """What will be measured on a stored series and what cannot (with why), in words; empty
    for a series whose report says nothing about it (CT/MR: the volume extraction)."""
    planned = series.get("measurements") or {}
    if isinstance(planned, str):  # already in words (the ingest command's JSON)
        return planned
    parts = []
    if planned.get("will"):
        parts.append("will measure " + ", ".join(m["label"] for m in planned["will"])
                     + f" ({planned['will'][0]['how']})")
    parts.extend(f"cannot measure {m['label']}: {m['reason']}"
                 for m in planned.get("cannot") or [])
    if series.get("pixels_blanked_outside_region"):
        parts.append("pixels outside the ultrasound image region blanked (burned-in text)")
    return "; ".join(parts)
