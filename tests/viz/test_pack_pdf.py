"""The MDT pack's page layout (``analytics.viz.pack_pdf``): what is written on the page is
whole, not cut short."""

from __future__ import annotations

import io

from pypdf import PdfReader

from analytics.viz.pack_pdf import PatientPage, render_pdf


def test_the_risk_sentence_with_its_first_reason_is_printed_whole():
    # the pack's sentence for a patient of the demo: three lines at 8.5 pt in the left
    # column; it was cut after two lines, mid-reason ("since the previous scan…")
    risk = ("Risk of death, decompensation or HCC within 3 y at the visit at 5.2 y: 31.8% "
            "(95% CI 26.0%-38.5%). Why: Liver surface nodularity 1.01 mm (+0.00841 mm since "
            "the previous scan): +5.8 points.")
    page = PatientPage("HT-0001", "Jane DOE · HT-0001", "Patient ID 1", risk_text=risk)
    pdf = render_pdf([page], header="MDT", footer="footer", intended_use="use")
    text = " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
    assert risk in text
    assert "…" not in text
