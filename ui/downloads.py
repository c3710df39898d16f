"""Download buttons whose file is made, and the download audited, on the click.

A table's bytes are not prepared on every script run: the button holds a callable that
Streamlit runs when the user clicks (a deferred ``st.download_button``). The callable is a
use case, so the permission check and the audit record (who, what, how many rows and
columns) come before the bytes; if the record cannot be written no file is offered. The
file is then granted to this browser once (``ui.webguard``), so nothing is left at a
reusable media URL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
import streamlit as st

from analytics.usecases.cohort import TableDownload, download_table
from ui import dash, webguard
from ui.format import fmt_count
from ui.loaders import AppContext


def on_click(make: Callable[[], bytes]) -> Callable[[], bytes]:
    """The ``data`` callable of a download button: run on the click, off the script thread,
    it calls ``make`` (an audited use case) and grants this browser one fetch of the bytes.
    """
    cookie = webguard.browser_cookie()  # read here: the callable runs off the script thread

    def data() -> bytes:
        return webguard.grant(make(), cookie)

    return data


def csv_button(label: str, make: Callable[[], bytes], *, file_name: str, key: str,
               help: str | None = None) -> None:
    """A CSV download button; ``make`` runs, and audits, only when the user clicks."""
    st.download_button(label, on_click(make), file_name=file_name, mime="text/csv", key=key,
                       help=help, on_click="ignore", icon=":material/download:")


def table_button(ctx: AppContext, table: pd.DataFrame | Callable[[], pd.DataFrame], *,
                 what: str, key: str, rows: int | None = None) -> None:
    """Download ``table`` as the viewer sees it (identified for a clinician) as CSV; the
    click runs :func:`analytics.usecases.cohort.download_table` (checked and audited).
    ``table`` may be a callable that reads the table on the click (``rows``: how many
    rows it gives, for the label), so a table of many pages is not read on every run."""
    uc = dash.use_case_context(ctx)
    identified = bool(ctx.viewer.identified)
    n_rows = rows if rows is not None else len(table)  # type: ignore[arg-type]

    def make() -> bytes:
        whole = table() if callable(table) else table
        return download_table(uc, TableDownload(whole, what, identified=identified))

    kind = "identified" if identified else "pseudonymised"
    csv_button(f"Download the table (CSV, {fmt_count(n_rows, 'row')}, {kind})", make,
               file_name=f"hepatrack-{what.replace('_', '-')}-{dt.date.today()}.csv", key=key,
               help="Every download is recorded in the audit trail")
