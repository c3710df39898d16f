"""SEG decoding against the CT read, on a 512 x 512 x 200 CT and its SEG.

1. Case: ``read_mask`` of the SEG onto the CT's grid (parse, bit unpacking, frame
   placement, every segment). Baseline: the per-pixel frame placement it replaced (one
   index pair per image pixel per frame, kept in ``tests/ingest/test_seg_decoding.py``),
   the rest unchanged; both must give the same masks.
2. Case: the same SEG decoding. Baseline: reading the CT itself (parse of the 200 stored
   files + the float32 HU volume, as the feature loader does). Target (issue 20): the SEG
   decodes no slower than the CT reads.

Wall seconds (interleaved, medians) and CPU seconds of this process (the machine is shared).

    .venv/bin/python benchmarks/seg_decode.py [--data DIR] [--slices N] [--repeat N]

``--data`` reuses ``DIR/upload`` written by ``benchmarks/upload_to_score.py --data DIR``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from analytics.config import IngestLimits  # noqa: E402
from analytics.ingest import masks as mask_reader  # noqa: E402
from analytics.ingest.reader import parse_trusted  # noqa: E402
from analytics.ingest.series import build_volume  # noqa: E402
from benchmarks.harness import compare  # noqa: E402
from tests.ingest.test_seg_decoding import per_pixel_placement  # noqa: E402


def write_upload(out: Path, slices: int) -> None:
    from analytics.synthetic import DicomIdentity
    from analytics.synthetic.dicom_writer import _write_ct_series, derived_uid, write_seg
    from analytics.synthetic.phantom import synthesize_visit_volume

    ident = DicomIdentity("SEG-BENCH", "BENCH^SEG", date(1960, 1, 1), "F", derived_uid("sb1"),
                          derived_uid("sb2"), derived_uid("sb3"), date(2024, 6, 3), "093000",
                          "SB1")
    vol = synthesize_visit_volume(2.5, np.random.default_rng(20), shape=(slices, 512, 512),
                                  spacing_mm=(1.25, 0.78125, 0.78125), lesions=1)
    _, datasets = _write_ct_series(vol, out / "CT", ident, slice_order="ascending",
                                   slice_thickness_mm=None, kvp=120.0)
    write_seg(vol, datasets, out / "SEG" / "seg.dcm", ident,
              seg_series_uid=derived_uid("sb4"), seg_sop_uid=derived_uid("sb5"))


def cpu_median(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        runs.append(time.process_time() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, metavar="DIR")
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    limits = IngestLimits()
    with tempfile.TemporaryDirectory() as tmp:
        upload = Path(args.data) / "upload" if args.data else Path(tmp) / "upload"
        if not (upload / "SEG" / "seg.dcm").exists():
            write_upload(upload, args.slices)
        files = sorted((upload / "CT").glob("*.dcm"))
        seg = (upload / "SEG" / "seg.dcm").read_bytes()

        def read_ct():
            return build_volume([parse_trusted(f.name, f.read_bytes(), limits) for f in files],
                                limits)

        volume = read_ct()

        def decode_seg():
            return mask_reader.read_mask(seg, "seg", volume, limits=limits)

        def decode_seg_per_pixel():
            real = mask_reader.place_frames
            mask_reader.place_frames = per_pixel_placement
            try:
                return decode_seg()
            finally:
                mask_reader.place_frames = real

        new, old = decode_seg(), decode_seg_per_pixel()
        assert new.masks.keys() == old.masks.keys() and all(
            np.array_equal(new.masks[k], old.masks[k]) for k in new.masks)
        print(f"SEG {len(seg) / 1e6:.1f} MB, {len(files)} CT slices; masks "
              + ", ".join(f"{k} {int(v.sum())} voxels" for k, v in new.masks.items()))
        r = args.repeat
        compare("SEG decode (vectorised placement)", decode_seg,
                "SEG decode (per-pixel placement)", decode_seg_per_pixel, repeat=r)
        compare("SEG decode", decode_seg, f"CT read ({len(files)} files -> HU volume)",
                read_ct, repeat=r)
        seg_cpu, old_cpu, ct_cpu = (cpu_median(fn, r) for fn in
                                    (decode_seg, decode_seg_per_pixel, read_ct))
        print(f"CPU seconds: SEG decode {seg_cpu:.2f} | per-pixel placement {old_cpu:.2f} "
              f"({old_cpu / seg_cpu:.1f}x) | CT read {ct_cpu:.2f} (SEG/CT "
              f"{seg_cpu / ct_cpu:.2f}; target <= 1)")


if __name__ == "__main__":
    main()
