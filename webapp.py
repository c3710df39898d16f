"""The dashboard server: Streamlit's ASGI app for ``app.py`` behind HepaTrack's HTTP guard.

``hepatrack serve`` runs ``streamlit run webapp.py``; Streamlit finds ``app`` below and
serves ``app.py`` with the middleware of ``ui.webguard`` (security headers, closed
metrics, downloads bound to the browser that asked for them, once).
"""

import streamlit as st

from ui.webguard import middleware

app = st.App("app.py", middleware=middleware())
