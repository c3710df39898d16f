"""The dashboard server: Streamlit's ASGI app for ``app.py`` behind HepaTrack's HTTP guard.

``hepatrack serve`` runs ``streamlit run webapp.py``; Streamlit finds ``app`` below and
serves ``app.py`` with the middleware of ``ui.webguard`` (security headers, closed
metrics, downloads bound to the browser that asked for them, once) and, as the server
starts, builds the shared dashboard caches in the background (``ui.warmup``; the health
check answers once they are built), so the first user does not wait for them.
"""

import streamlit as st

from ui import warmup
from ui.webguard import middleware

app = st.App("app.py", middleware=middleware(ready=warmup.ready), lifespan=warmup.lifespan)
