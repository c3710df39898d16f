"""The served dashboard over HTTP, in real Chromium against ``hepatrack serve``: every page
carries anti-framing headers, metrics are closed, and the identified MDT pack is fetched
only by the browser that clicked for it, once (a copied media URL is refused to ``curl``).
The meeting list is filled through "Paste a list of pseudonyms".
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import UI_TIMEOUT_MS, VIEWPORT, login
from tests.e2e.test_dashboard import JOB_TIMEOUT_MS

pytestmark = [pytest.mark.e2e, pytest.mark.services]
CLINICIAN = "dr.grey"


NAVIGATE = {"Sec-Fetch-Mode": "navigate"}  # what a browser sends for a download


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP GET (``curl``): no browser, no cookie."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@pytest.mark.timeout(120)
def test_every_response_forbids_framing_and_metrics_are_closed(dashboard_server):
    url, _t, _home = dashboard_server
    for path in ("/", "/_stcore/health", "/media/0123456789abcdef.png"):
        _status, headers, _ = _get(url + path)
        assert headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path
    status, _h, body = _get(url + "/_stcore/metrics")
    assert status == 404 and b"session" not in body
    status, _h, _ = _get(url + "/media/0123456789abcdef.png")
    assert status == 403  # no browser cookie: media are not served to curl


@pytest.mark.timeout(420)
def test_pasted_list_then_the_identified_pack_downloads_once_and_only_in_its_browser(
        dashboard_server, chromium_browser, tmp_path):
    from pypdf import PdfReader

    url, t, _home = dashboard_server
    page = chromium_browser.new_page(viewport=VIEWPORT)
    try:
        login(page, url, CLINICIAN)
        page.locator(".st-key-shell-menu").get_by_text("MDT meeting", exact=True).click()
        chosen = [t.imaging[0], t.pseudonyms["SYN3-0010"]]
        page.get_by_text("Paste a list of pseudonyms").click()
        page.locator(".st-key-mdt-paste textarea").fill(f"{chosen[0]}, NOBODY-9\n{chosen[1]}")
        page.get_by_role("button", name="Add to the meeting list").click()
        page.get_by_text("Not in the store: NOBODY-9").wait_for(timeout=UI_TIMEOUT_MS)
        build = page.get_by_role("button", name=f"Build the PDF pack ({len(chosen)} page(s))")
        build.wait_for(timeout=UI_TIMEOUT_MS)
        build.click()
        download = page.get_by_role("button", name=re.compile(r"Download the pack .*identified"))
        download.wait_for(timeout=JOB_TIMEOUT_MS)

        # while the click's file is live, the same URL is refused to curl and to another
        # browser (a cookie of its own), then the browser downloads it
        other = _get(url + "/")[1]["set-cookie"].split(";")[0]
        stolen: list[tuple[int, int]] = []

        def steal_then_continue(route) -> None:
            stolen.append((_get(route.request.url, NAVIGATE)[0],
                           _get(route.request.url, {**NAVIGATE, "Cookie": other})[0]))
            route.continue_()

        page.route("**/media/**", steal_then_continue)
        with page.expect_download() as dl:
            download.click()
        pdf = tmp_path / "pack.pdf"
        dl.value.save_as(pdf)
        page.unroute("**/media/**")
        pages = PdfReader(str(pdf)).pages
        assert [p in pg.extract_text() for p, pg in zip(chosen, pages, strict=True)] == [True] * 2
        assert stolen and set(stolen) == {(403, 403)}
        used = dl.value.url
        assert "/media/" in used

        # afterwards the URL is refused to curl, and spent (or gone) for the browser too
        assert _get(used, NAVIGATE)[0] == 403
        assert page.request.get(used, headers=NAVIGATE).status in (403, 404)
    finally:
        page.close()
