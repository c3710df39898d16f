"""The first patient switches after a server start: once the server's warm-up has run
(``ui.warmup``), the Patient page's first run and a first switch to a patient with a CT
import nothing more than later switches do (plotly's validators, its JSON encoder and
Pillow's image plugins used to be loaded then, in the first clinician's wait)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.app.conftest import APP
from tests.dashboard_data import copied_home, template_home

#: fixtures: a private copy of the trained dashboard home, and its template
home, template = copied_home, template_home

ROOT = Path(APP).parent

#: a just-started server: its warm-up, then a clinician opens the Patient page on a patient
#: without imaging and switches to one with a CT; prints the modules each step imported
SCRIPT = """
import json, sys
from streamlit.testing.v1 import AppTest
from ui import warmup
from ui.session import VIEWER_KEY, Viewer

warmup.warm_cohort()
warmup.warm_patient_page()
labs, ct = sys.argv[1:3]
at = AppTest.from_file(sys.argv[3], default_timeout=120)
at.session_state[VIEWER_KEY] = Viewer("dr.grey", "clinician", "s-clin")
at.query_params["patient"] = labs
at.run()
new = {}
for step, act in (("patient page", lambda: at.switch_page("pages/patient.py").run()),
                  ("switch", lambda: at.text_input(key="patient:find").set_value(ct).run())):
    before = set(sys.modules)
    act()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    new[step] = sorted(set(sys.modules) - before)
new["images"] = len(at.get("image"))
print("NEW-MODULES " + json.dumps(new))
"""


def test_after_the_warm_up_a_first_switch_to_a_ct_patient_imports_nothing_new(
        home, template):
    labs = sorted(set(template.pseudonyms.values()) - set(template.imaging))[0]
    ct = template.imaging[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, labs, ct, APP], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("NEW-MODULES ")][-1]
    new = json.loads(line.removeprefix("NEW-MODULES "))
    assert new["images"] == 1  # the key image is drawn
    assert new["patient page"] == [] and new["switch"] == []
