"""Ingest speed on a 512x512x200 uncompressed CT series (100 MiB), folder and zip.

Figures, each beside a baseline timed in the same run on the same bytes, first with the
pool the product uses (``analytics.ingest.warm.pool_size()`` parse workers: the dashboard's
warm pool and every ingest's own pool), then with one worker when that differs:

1. parse + series assembly (safe parser, geometry check and slice order)
   from a folder, against a plain read of the same files;
2. the same from a zip archive, against a plain read of the archive's entries;
3. parse + assembly + pixel stacking into a float32 HU volume, against SimpleITK's
   ImageSeriesReader building the same volume (wall time, then CPU seconds of this
   process and the parse workers beside SimpleITK's);
4. the full ingest (parse, de-identification, staged writes with fsync, one transaction),
   against parse + assembly alone.

Targets: parse + assembly >= 250 MB/s on one core, de-identified writes excluded (issue 3);
the read path (figure 3) >= 1.2x SimpleITK in wall time with the product's pool.
The load average is printed with the figures.
Run: ``.venv/bin/python benchmarks/ingest.py [--slices N] [--repeat N] [--volume-only]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import compare

CT = "1.2.840.10008.5.1.4.1.1.2"


def write_series(folder: Path, n: int, size: int = 512) -> int:
    """Write an axial CT series of ``n`` slices; return the total bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 1400, size=(size, size), dtype=np.int16)
    total = 0
    for k in range(n):
        ds = Dataset()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CT, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.PatientBirthDate = "BENCH-001", "Bench^Mark", "19600101"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20230301", "101010", "A1"
        ds.Modality, ds.Manufacturer, ds.InstitutionName = "CT", "ACME", "Bench Hospital"
        ds.SeriesDescription = "ABDOMEN PORTAL VENOUS 1.25mm"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = n - k
        ds.ImagePositionPatient = ["-200", "-200", f"{-k * 1.25:.2f}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing, ds.SliceThickness = ["0.78125", "0.78125"], "1.25"
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        ds.PixelData = np.roll(base, k, axis=0).tobytes()
        path = folder / f"IM{k:04d}"
        ds.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
    return total


def cpu_seconds(worker_pids: list[int]) -> float:
    """CPU time (user + system) of this process and the parse workers so far."""
    import os
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in worker_pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def sitk_read(folder: Path, slices: int) -> None:
    """The baseline: SimpleITK's ImageSeriesReader builds the series' volume."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    assert img.GetSize() == (512, 512, slices)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def volume_figures(parser, label: str, folder: Path, parse_volume, sitk_volume,
                   repeat: int, units: tuple[float, str]) -> None:
    """Wall (interleaved medians) and CPU seconds of the read path against SimpleITK."""
    compare(f"parse+assembly+HU volume, folder, {label}", parse_volume,
            "SimpleITK ImageSeriesReader", sitk_volume, repeat=repeat, units=units)
    cpu = {}
    for name, fn in (("case", parse_volume), ("SimpleITK", sitk_volume)):
        pids = [w.proc.pid for w in parser._workers]
        before = cpu_seconds(pids)
        for _ in range(repeat):
            fn()
        cpu[name] = (cpu_seconds(pids) - before) / repeat
    print(f"parse+assembly+HU volume, folder, {label}: {cpu['case']:.2f} CPU-s (parent + "
          f"workers) | SimpleITK ImageSeriesReader: {cpu['SimpleITK']:.2f} CPU-s | "
          f"{cpu['SimpleITK'] / cpu['case']:.2f}x less CPU (the figure load does not "
          f"distort) | load {load()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--volume-only", action="store_true",
                    help="only figure 3 (the read path against SimpleITK), product pool only")
    args = ap.parse_args()

    from analytics.config import IngestLimits
    from analytics.ingest.warm import pool_size

    limits = IngestLimits()
    with tempfile.TemporaryDirectory(prefix="hepatrack-bench-") as tmp:
        root = Path(tmp)
        folder = root / "series"
        total = write_series(folder, args.slices)
        archive = root / "series.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            for f in sorted(folder.iterdir()):
                zf.write(f, f"CT/{f.name}")
        print(f"series: {args.slices} slices of 512x512 int16, {total / 1e6:.1f} MB "
              f"uncompressed; load {load()}")
        product = pool_size()
        for workers in sorted({product} if args.volume_only else {1, product}, reverse=True):
            label = (f"{workers} worker{'s' * (workers > 1)}"
                     + (" (the product's pool_size())" if workers == product else ""))
            run_pool(limits, workers, label, root, folder, archive, total, args)


def run_pool(limits, workers: int, label: str, root: Path, folder: Path, archive: Path,
             total: int, args) -> None:
    """Every figure with a pool of ``workers`` parse workers."""
    from analytics.config import load_settings
    from analytics.ingest.pipeline import ingest_sources
    from analytics.ingest.reader import ParsedInstance, SafeParser
    from analytics.ingest.series import build_volume, check_series
    from analytics.ingest.sources import iter_local_source
    from analytics.store import open_store

    mb, r = total / 1e6, args.repeat
    units = (mb, "MB")
    with SafeParser(limits, workers=workers) as parser:
        parser.start()

        def parsed(source: Path) -> list[ParsedInstance]:
            got = [res for res in parser.parse_many(iter_local_source(source, limits))
                   if isinstance(res, ParsedInstance)]
            assert len(got) == args.slices, f"parsed {len(got)} of {args.slices}"
            return got

        def parse_assemble(source: Path) -> None:
            check = check_series(parsed(source), limits)
            assert check.ok, check.reason

        def raw_read_folder() -> None:
            for f in sorted(folder.iterdir()):
                f.read_bytes()

        def raw_read_zip() -> None:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    zf.read(info)

        def parse_volume() -> None:
            vol = build_volume(parsed(folder), limits, parser)
            assert vol.shape == (args.slices, 512, 512)

        sitk_volume = partial(sitk_read, folder, args.slices)
        parse_assemble(folder)  # warm-up: the pool's first batch
        if args.volume_only:
            volume_figures(parser, label, folder, parse_volume, sitk_volume, r, units)
            return
        pids = [w.proc.pid for w in parser._workers]
        before, wall = cpu_seconds(pids), time.perf_counter()
        for _ in range(r):
            parse_assemble(folder)
        cpu = cpu_seconds(pids) - before
        wall = time.perf_counter() - wall
        print(f"parse+assembly, folder, {label}: {mb * r / cpu:,.0f} MB per CPU-second "
              f"(parent + workers; {cpu / r:.2f} CPU-s vs {wall / r:.2f} wall-s per series): "
              "the one-core figure, independent of machine load")
        compare(f"parse+assembly, folder, {label}", lambda: parse_assemble(folder),
                "raw read of the same files", raw_read_folder, repeat=r, units=units)
        compare(f"parse+assembly, zip, {label}", lambda: parse_assemble(archive),
                "raw read of the zip entries", raw_read_zip, repeat=r, units=units)
        volume_figures(parser, label, folder, parse_volume, sitk_volume, r, units)

        homes = iter(range(10 * (r + 1)))

        def full_ingest() -> None:
            settings = load_settings(root / f"home-{workers}-{next(homes)}")
            store = open_store(settings)
            report = ingest_sources([str(folder)], settings, store, parser=parser)
            store.dispose()
            assert report.instances == args.slices, report.as_dict()

        compare(f"full ingest (de-id, staged fsynced writes, commit), {label}", full_ingest,
                "parse+assembly only", lambda: parse_assemble(folder), repeat=r,
                units=units)


if __name__ == "__main__":
    main()
