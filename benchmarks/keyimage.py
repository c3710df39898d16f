"""The Patient page's key image at a patient switch: the stored key view against the
render path it replaced, in one process, on a copy of a home with imaging (default: a
copy of ``--home``, e.g. the demo home; the case writes the stored views).

1. Case: :func:`analytics.usecases.keyview.key_view` of a series whose view is stored
   (the inputs' version, one blob read, the PNG as stored). Baseline: what the page did
   at each first view of a series in a session: ``load_key_image`` (every file of the
   series parsed, the volume and its SEG/automatic masks decoded, oriented, resampled)
   then ``render_slice`` of the key slice and ``png_bytes``. Both give the same PNG
   (checked pixel for pixel first, on every series).
2. Case: the one-off render and store of a view (``key_view`` with nothing stored: what
   the warm-up or the first view pays once per series). Baseline: the same render path.

Medians per series over ``--series`` series (each patient's newest CT/MR series,
interleaved), with the load average (the machine is shared: compare ratios).

    .venv/bin/python benchmarks/keyimage.py --home /tmp/demo25 [--series 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from analytics.config import load_settings  # noqa: E402
from analytics.store import key_images, open_store  # noqa: E402
from analytics.usecases.keyimage import load_key_image, png_bytes, render_slice  # noqa: E402
from analytics.usecases.keyview import key_view  # noqa: E402
from benchmarks.harness import compare, demo_home  # noqa: E402


def render_path(store, settings, uid: str) -> bytes:
    """The baseline: the key slice as the page rendered it before views were stored."""
    stack = load_key_image(store, settings, uid)
    return png_bytes(render_slice(stack, stack.key_index))


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None,
                    help="a home with imaging (copied first; never written; default: a "
                         "300-patient demo home built first)")
    ap.add_argument("--series", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hepatrack-bench-keyimage-") as tmp:
        home = Path(tmp) / "home"
        source = a.home or demo_home(Path(tmp) / "demo")
        shutil.copytree(source, home, ignore=shutil.ignore_patterns("*.lock"))
        settings = load_settings(home)
        store = open_store(settings)
        key_images.forget(store)
        uids = key_images.newest_series(store, a.series)
        if not uids:
            sys.exit(f"{source}: no complete CT or MR series to show")
        for uid in uids:  # same picture first: stored view against the render path
            stored = key_view(store, settings, uid)
            again = key_view(store, settings, uid)
            assert again == stored, uid
            assert np.array_equal(_pixels(again.png), _pixels(render_path(store, settings, uid)))
        print(f"{len(uids)} series of {source}, pictures checked equal; load "
              f"{os.getloadavg()[0]:.2f}", flush=True)

        def each(fn):
            return lambda: [fn(store, settings, uid) for uid in uids]

        def fresh_view(store_, settings_, uid):
            key_images.forget(store_, uid)
            return key_view(store_, settings_, uid)

        n = len(uids)
        c = compare(f"stored key view ({n} series)", each(key_view),
                    f"load_key_image + render + PNG ({n} series)", each(render_path),
                    repeat=a.repeat, warmup=1)
        print(f"  per series: {1000 * c.case.median / n:.1f} ms vs "
              f"{1000 * c.baseline.median / n:.0f} ms", flush=True)
        c = compare(f"first view: render + store ({n} series)", each(fresh_view),
                    f"load_key_image + render + PNG ({n} series)", each(render_path),
                    repeat=a.repeat, warmup=0)
        print(f"  per series: {1000 * c.case.median / n:.0f} ms vs "
              f"{1000 * c.baseline.median / n:.0f} ms; load now {os.getloadavg()[0]:.2f}")
        store.dispose()


if __name__ == "__main__":
    main()
