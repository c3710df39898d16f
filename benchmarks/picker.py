"""The Patient page's patient picker on a home (e.g. 5,000 patients): server time and the
bytes it sends to the browser per rerun, the search picker against the whole-list one.

Case (``ui.picker``): the picker's patients found in the store with a ``LIMIT``
(``repo.find_names`` with a search and ``limit=20``, plus the current and recent
patients by pseudonym), their labels, and the selector's message. Baseline (the picker it
replaced): the whole patient list (``repo.list_patients``), every option's label
(``ui.tables.patient_choices``, as the selector formats every option on each run) and
the selector's message with every option. Both views (pseudonymised, identified).

Three comparisons per view, interleaved in one process: what a new data version or a
cold server pays (the store read included), what every rerun pays (the lists cached:
labels and the selector's message), and the size of that message (the websocket delta
of the selector element, ``ForwardMsg.ByteSize``, sent on every rerun).

    .venv/bin/python benchmarks/picker.py [--home ROOT] [--patients 5000] [--repeat 5]
        [--search 01]

``ROOT/home`` is used (as ``browser.py`` and ``dashboard.py`` do; built there on first use:
labs-only synthetic cohort and a Cox model, ``benchmarks.dashboard.build_home``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import compare

LIMIT = 20
RECENT = 8


def selector_bytes(labels: list[str]) -> int:
    """Bytes of the websocket message that draws a selectbox with these option labels,
    serialised and hashed as Streamlit does with every message it sends
    (``forward_msg_cache.populate_hash_if_needed``)."""
    from streamlit import util
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = ForwardMsg()
    box = msg.delta.new_element.selectbox
    box.id = "$$ID-patient-pseudonym"
    box.label = "Patient"
    box.options[:] = labels
    box.default = 0
    box.help = "The current patient, the patients found and the patients opened recently"
    data = msg.SerializeToString(deterministic=True)
    util.calc_hash(data)
    return len(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=Path("/tmp/hepatrack-bench-browser"),
                    help="a folder holding home/ (built there when missing)")
    ap.add_argument("--patients", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--search", default="01", help="the text typed in the search box")
    args = ap.parse_args()
    home = args.home / "home"
    os.environ["HEPATRACK_HOME"] = str(home)

    from analytics.config import load_settings
    from analytics.store import open_store, repo
    from benchmarks.dashboard import build_home
    from ui import tables

    if not (home / "hepatrack.db").exists():
        build_home(home, args.patients)
    store = open_store(load_settings(home))
    names = repo.find_pseudonyms(store, repo.PatientQuery(limit=RECENT + 1),
                                 identified=False)
    for identified in (False, True):
        view = "identified" if identified else "pseudonymised"

        def whole(identified: bool = identified) -> list[str]:
            options, label = tables.patient_choices(
                repo.list_patients(store, identified=identified))
            return [label(p) for p in options]

        def search(identified: bool = identified) -> list[str]:
            found = repo.find_names(store, repo.PatientQuery(search=args.search, limit=LIMIT),
                                    identified=identified)
            kept = repo.find_names(store, repo.PatientQuery(pseudonyms=tuple(names)),
                                   identified=identified)
            labels: dict[str, str] = {}
            for rows in (found, kept):
                options, label = tables.patient_choices(rows)
                labels |= {p: label(p) for p in options}
            return list(labels.values())

        every, some = whole(), search()
        if not set(some) <= set(every):  # same labels for the same patients
            print(f"FAILED: {view} search picker labels not among the whole list's")
            return 1
        compare(f"search picker, store read + labels + message ({view}, "
                f"{len(some)} options)", lambda s=search: selector_bytes(s()),
                f"whole-list picker, store read + labels + message ({view}, "
                f"{len(every)} options)", lambda w=whole: selector_bytes(w()),
                repeat=args.repeat, warmup=1)
        options, label = tables.patient_choices(repo.list_patients(store,
                                                                   identified=identified))
        few = options[:len(some)]
        compare(f"search picker, per rerun: labels + message ({view})",
                lambda few=few, label=label: selector_bytes([label(p) for p in few]),
                f"whole-list picker, per rerun: labels + message ({view})",
                lambda every=options, label=label: selector_bytes([label(p) for p in every]),
                repeat=args.repeat, warmup=1)
        print(f"message per rerun ({view}): search picker {selector_bytes(some):,} bytes "
              f"| whole-list picker {selector_bytes(every):,} bytes "
              f"| {selector_bytes(every) / selector_bytes(some):.0f}x smaller")
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}")
    store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
