"""Build the dashboard's shared caches when the server starts, not in the first session.

A just-started server used to make its first signed-in user wait for everything at once:
the page modules' imports (pandas, plotly, lifelines, scikit-learn: seconds), the cohort
table, every patient's risk, the incidence by risk group and the follow-up timeline (tens
of seconds on a 5,000-patient cohort). :func:`lifespan` (mounted by ``webapp.py``) runs
:func:`warm` on a background thread as the server starts. Until the Cohort page's part
ends (or
:data:`READY_AFTER_S` passed) :func:`ready` is False and the health check answers 503
(``ui.webguard``): browsers and service managers wait to connect rather than a first user
waiting after signing in. A session arriving before the warm-up ends waits on the same
build (Streamlit's cache locks each entry) instead of starting another.

Only the shared, pseudonymised entries are built (``ui.dash``, ``ui.loaders``): nothing
per viewer or session, no names, identifiers or real dates, no audit record (nobody
viewed anything). A store that cannot be read, or a model that does not load, is left to
the pages, which show the error to whoever opens them.

Once the health check answers, the warm-up makes the Patient page's first run as cheap
as its later ones first (:func:`warm_patient_page`: its imports and the libraries'
first-use costs, with made-up data), then imports the other pages' modules and renders
the key images that are missing; the key-image pass is skipped when the store's data did
not change since its last complete pass (a restart checks no series again).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from streamlit.logger import get_logger

from analytics.config import Settings, load_settings
from analytics.errors import HepaTrackError
from analytics.store.db import Store

LOG = get_logger(__name__)
#: the longest the server reports not ready while warming (a stuck store must not keep
#: the dashboard closed; the pages then build what is missing themselves)
READY_AFTER_S = 180.0
_started: list[float] = []
_done = threading.Event()

#: what the Cohort page (the start page) imports on its first run, imported before the
#: health check answers
COHORT_MODULES = ("analytics.viz", "analytics.usecases.overview", "analytics.cohort",
                  "analytics.models.registry", "ui.cohort_view", "ui.downloads",
                  "ui.tables", "ui.format")
#: what the Patient page imports on its first run (the first patient switch after a start
#: paid them), imported as soon as the health check answers
PATIENT_MODULES = ("analytics.explain", "ui.patient_view", "ui.patient_header", "ui.patient_risk",
                   "ui.picker", "ui.patient_images", "analytics.usecases.mask_review",
                   "analytics.usecases.mdt_facts", "analytics.models.assessability",
                   "analytics.masks_review", "analytics.usecases.keyview", "plotly.io")
#: what the other pages import (seconds the first visit of each paid), imported after the
#: Patient page's part
OTHER_MODULES = ("ui.mdt_view", "ui.mdt_screen", "ui.mdt_record", "ui.mdt_pack",
                 "ui.models_view", "ui.ingest_view", "ui.ingest_panels")


@dataclass(frozen=True)
class _Source:
    """What the shared builders read (``ui.dash``'s cached functions take ``_ctx`` for
    its ``store`` and ``settings`` only): no viewer, so nothing per user can be built."""

    settings: Settings
    store: Store

    @property
    def database_url(self) -> str:
        return self.settings.database_url


def warm(settings: Settings | None = None) -> dict[str, float]:
    """:func:`warm_cohort`, :func:`warm_patient_page`, then the other pages' imports
    (:data:`OTHER_MODULES`). Returns seconds per step; raises as :func:`warm_cohort`.
    """
    steps = warm_cohort(settings)
    return steps | warm_patient_page() | warm_imports(OTHER_MODULES)


def warm_patient_page() -> dict[str, float]:
    """Import the Patient page's modules (:data:`PATIENT_MODULES`) and pay the first-use
    costs of what its first switch to a patient with a scan draws: plotly's validators of
    the biomarker chart (subplots, reference lines, scatter lines) and its JSON encoder,
    Pillow's image plugins (the key image). The figure is built from made-up values and
    thrown away: no patient data. Returns seconds per step."""
    steps = warm_imports(PATIENT_MODULES)
    t0 = time.perf_counter()
    from ui import first_use  # here: its imports are the warm-up's work, as below

    first_use.draw_patient_examples()
    steps["patient page figures"] = time.perf_counter() - t0
    return steps


def warm_imports(modules: tuple[str, ...]) -> dict[str, float]:
    """Import ``modules``; seconds per import."""
    steps = {}
    for module in modules:
        t0 = time.perf_counter()
        importlib.import_module(module)
        steps[f"import {module}"] = time.perf_counter() - t0
    return steps


def warm_cohort(settings: Settings | None = None) -> dict[str, float]:
    """Import the Cohort page's modules and build its shared caches of the store's
    current data version: cohort table, the active model's risk and risk groups at its
    longest horizon (the page's default), the risk figure, the follow-up timeline, the
    headline counts, the pseudonymised patient list and the picker's first patients. Returns seconds per step (for the log and the benchmarks).

    Raises
    ------
    HepaTrackError
        If the settings or the store cannot be read, or the model does not load.
    """
    # here, not at the top: ``webapp.py`` imports this module as the server starts, and
    # these imports (pandas, plotly, the engine) are part of the warm-up's own work
    from ui import dash, loaders

    steps = warm_imports(COHORT_MODULES)

    def step(name: str, fn, *args) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        steps[name] = time.perf_counter() - t0
        return out

    settings = settings or load_settings()
    home, url = str(settings.home), settings.database_url
    src = _Source(settings, loaders._store(home, url))
    version = step("data version", loaders._data_version, url, home)
    counts = step("summary", loaders._summary, url, home, version)
    if not counts.get("patients"):
        return steps
    step("timeline", loaders._timeline, url, home, version)
    step("patient list", loaders._patients, False, url, home, version)
    for limit in (1, loaders.PICKER_LIMIT):  # the Patient page's first patient and picker
        step(f"patient picker {limit}", loaders._picker_search, False, "", limit, url, home,
             version)
    step("cohort table", dash._cohort, url, home, version, src)
    model_id = dash.active_model_id(src)  # type: ignore[arg-type]  # store, settings only
    if model_id is None:
        return steps
    model = step("model", dash._model, home, url, str(model_id), src)
    horizon = float(max(model.horizons))
    step("cohort risk", dash._cohort_risk, url, home, version, str(model_id), horizon, src)
    try:
        gi = step("risk groups", dash._incidence, url, home, version, str(model_id),
                  horizon, src)
    except HepaTrackError:  # too few patients to group: the page says so
        gi = None
    cuts = tuple(float(c) for c in gi.cuts) if gi is not None else None
    step("risk figure", dash._risk_figure, url, home, version, str(model_id), horizon,
         cuts, src)
    dash._freeze_long_lived()  # the entries built after the cohort risk's freeze too
    return steps


def ready() -> bool:
    """Whether the server may report healthy: no warm-up started, it ended (built or
    failed), or it has run longer than :data:`READY_AFTER_S`."""
    return (not _started or _done.is_set()
            or time.monotonic() - _started[-1] > READY_AFTER_S)


def _run() -> None:
    t0 = time.perf_counter()
    try:
        steps = warm_cohort()
    except HepaTrackError as err:  # the pages show it to whoever opens them
        LOG.warning("dashboard warm-up stopped: %s", err)
        return
    finally:
        _done.set()  # the Cohort page opens quickly: the health check may answer
    slow = ", ".join(f"{k} {v:.1f} s" for k, v in steps.items() if v >= 0.1)
    LOG.info("dashboard caches built in %.1f s (%s)", time.perf_counter() - t0, slow)
    t0 = time.perf_counter()
    warm_patient_page()
    LOG.info("patient page warmed in %.1f s", time.perf_counter() - t0)
    t0 = time.perf_counter()
    warm_imports(OTHER_MODULES)
    LOG.info("other pages' modules imported in %.1f s", time.perf_counter() - t0)
    t0 = time.perf_counter()
    try:
        counts = warm_key_images()
    except HepaTrackError as err:
        LOG.warning("key images not rendered ahead: %s", err)
        return
    LOG.info("key images in %.1f s: %s", time.perf_counter() - t0, counts)


#: patients whose newest CT/MR key image the warm-up renders ahead when missing, and the
#: seconds it may spend starting renders (each is stored: a restart does not redo them)
WARM_KEY_IMAGES = 5000
WARM_KEY_IMAGES_S = 600.0


def warm_key_images(settings: Settings | None = None,
                    pause: Callable[[], object] | None = None) -> dict[str, int]:
    """Render and store the key image of each patient's newest CT/MR series that has
    none for its current inputs, unless a complete pass already ran on the store's
    current data (``analytics.usecases.keyview.render_missing_if_changed``), so a patient
    switch reads it instead of the series. ``pause`` is called before each series (the
    server waits for a quiet moment). Returns the counts.

    Raises
    ------
    HepaTrackError
        If the settings or the store cannot be read.
    """
    from analytics.usecases.keyview import render_missing_if_changed
    from ui import loaders

    settings = settings or load_settings()
    store = loaders._store(str(settings.home), settings.database_url)
    return render_missing_if_changed(store, settings, limit=WARM_KEY_IMAGES,
                                     budget_s=WARM_KEY_IMAGES_S, pause=pause)


def start() -> threading.Thread:
    """Run :func:`warm` on a daemon thread (the server does not wait for it; its health
    check does, see :func:`ready`)."""
    _done.clear()
    _started.append(time.monotonic())
    thread = threading.Thread(target=_run, name="hepatrack-warmup", daemon=True)
    thread.start()
    return thread


@contextlib.asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """``st.App``'s lifespan: start the warm-up as the server starts."""
    start()
    yield
