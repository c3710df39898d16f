"""Synthetic cohort generator: how fast are a default series, a --full series, the demo.

1. Smooth random fields: ``FourierField.on_grid`` (one complex matrix product over a
   rank-K separable sum) against summing the K plane waves voxel-wise with ``np.cos``,
   on a liver-sized box at --full resolution. The script checks both agree first.
2. One default series (128 x 128 x 44): render + write CT + write SEG, against the
   floor of writing the same number of slices of the same size with pydicom alone.
3. One --full series (512 x 512 x 176): render, against the noise floor (drawing and
   filtering the same number of Gaussian noise voxels), then the CT + SEG writing time.
4. With ``--demo``: the whole ``sample_data/demo.toml`` cohort, once (about a minute),
   against writing its number of slices with pydicom alone.

    .venv/bin/python benchmarks/synthetic.py [--demo] [--workers N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from scipy import ndimage

from analytics.synthetic import DicomIdentity, generate_cohort, load_cohort_config
from analytics.synthetic.anatomy import draw_anatomy
from analytics.synthetic.dicom_writer import _write_ct_series, derived_uid, write_seg
from analytics.synthetic.fields import FourierField
from analytics.synthetic.phantom import synthesize_visit_volume
from benchmarks.harness import compare, format_seconds, measure, peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
FULL = ((176, 512, 512), (1.25, 0.75, 0.75))
DEFAULT = ((44, 128, 128), (5.0, 3.0, 3.0))


def _ident(tag: str) -> DicomIdentity:
    return DicomIdentity("SYN-9999", "DOE^JOHN", date(1960, 1, 1), "M", derived_uid("st", tag),
                         derived_uid("se", tag), derived_uid("for", tag), date(2020, 1, 1),
                         "100000", "A1")


def plain_write(out: Path, n: int, rows: int, cols: int) -> None:
    """Baseline: write ``n`` CT-sized slices of zeros with a minimal header."""
    out.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((rows, cols), np.uint16).tobytes()
    for i in range(n):
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = derived_uid("plain", i)
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = pixels
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(out / f"{i:05d}.dcm", enforce_file_format=True)


def series(anatomy, shape, spacing, out: Path, tag: str) -> None:
    vol = synthesize_visit_volume(3.0, np.random.default_rng(1), anatomy=anatomy, shape=shape,
                                  spacing_mm=spacing, lesions=None)
    _, datasets = _write_ct_series(vol, out / tag / "CT", _ident(tag),
                                       slice_order="ascending", slice_thickness_mm=None,
                                       kvp=120.0)
    write_seg(vol, datasets, out / tag / "seg.dcm", _ident(tag),
              seg_series_uid=derived_uid("seg", tag), seg_sop_uid=derived_uid("sop", tag))


def bench_fields() -> None:
    field = FourierField.draw(np.random.default_rng(0), rms=1.0, wavelength_mm=(12, 28),
                              n_waves=48)
    zs, ys, xs = (np.arange(n) * s for n, s in zip((120, 280, 280), (1.25, 0.75, 0.75),
                                                   strict=True))

    def direct() -> np.ndarray:
        out = np.zeros((len(zs), len(ys), len(xs)), np.float32)
        z, y, x = zs[:, None, None], ys[None, :, None], xs[None, None, :]
        for (kx, ky, kz), c in zip(field.wavevectors, field.coefficients, strict=True):
            out += (abs(c) * np.cos(kx * x + ky * y + kz * z + np.angle(c))).astype(np.float32)
        return out

    assert np.allclose(field.on_grid((zs, ys, xs)), direct(), atol=1e-3)
    compare("FourierField.on_grid (complex matmul)", lambda: field.on_grid((zs, ys, xs)),
            "voxel-wise sum of 48 cosines", direct, repeat=3,
            units=(len(zs) * len(ys) * len(xs) / 1e6, "Mvoxel"))


def bench_default_series(anatomy, tmp: Path) -> None:
    (shape, spacing), counter = DEFAULT, iter(range(10**6))
    compare("default series: render + CT + SEG", lambda: series(
                anatomy, shape, spacing, tmp, f"d{next(counter)}"),
            f"pydicom write of {shape[0]} blank {shape[1]}x{shape[2]} slices",
            lambda: plain_write(tmp / f"p{next(counter)}", *shape), repeat=3,
            units=(shape[0], "slices"))


def bench_full_series(anatomy, tmp: Path) -> None:
    shape, spacing = FULL
    rng = np.random.default_rng(0)

    def noise_floor() -> None:
        for k0 in range(0, shape[0], 16):
            slab = rng.standard_normal((min(16, shape[0] - k0), *shape[1:]), dtype=np.float32)
            ndimage.gaussian_filter(slab, (0, 0.6, 0.6), output=slab)

    compare("--full render (512x512x176)", lambda: synthesize_visit_volume(
                3.0, np.random.default_rng(1), anatomy=anatomy, shape=shape,
                spacing_mm=spacing, lesions=None),
            "noise floor: draw + filter as many Gaussian voxels", noise_floor,
            repeat=1, warmup=0, units=(float(np.prod(shape)) / 1e6, "Mvoxel"))
    t = measure(lambda: series(anatomy, shape, spacing, tmp, "full"), repeat=1, warmup=0)
    print(f"--full series end to end (render + {shape[0]} CT files + SEG): "
          f"{format_seconds(t.median)}; peak RSS {peak_rss_mib():.0f} MiB")


def bench_demo(tmp: Path, workers: int) -> None:
    cfg = load_cohort_config(ROOT / "sample_data" / "demo.toml")
    started = time.perf_counter()
    m = generate_cohort(tmp / "demo", cfg, workers=workers)
    seconds = time.perf_counter() - started
    shape = DEFAULT[0]
    floor = measure(lambda: plain_write(tmp / "demo-floor", m.n_instances, *shape[1:]),
                    repeat=1, warmup=0)
    print(f"case demo cohort ({m.n_patients} patients, {len(m.series_dirs)} series, "
          f"{m.n_instances} CT slices, workers={workers}): {format_seconds(seconds)} | "
          f"baseline pydicom write of {m.n_instances} blank slices: "
          f"{format_seconds(floor.median)} | {seconds / floor.median:.1f}x the write floor")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", action="store_true", help="also time the whole demo cohort")
    ap.add_argument("--workers", type=int, default=1, help="processes for --demo")
    args = ap.parse_args()
    anatomy = draw_anatomy(np.random.default_rng(4), n_cysts=1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_fields()
        bench_default_series(anatomy, tmp)
        bench_full_series(anatomy, tmp)
        if args.demo:
            bench_demo(tmp, args.workers)


if __name__ == "__main__":
    main()
