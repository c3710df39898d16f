"""HepaTrack dashboard entry point (``hepatrack serve`` runs ``streamlit run app.py``).

The shell only wires things together: settings, viewer and store from ``ui.loaders``,
the page list from ``ui.shell.PAGES`` (filtered by role), the shared sidebar.
"""

import streamlit as st

from ui import shell

st.set_page_config(page_title="HepaTrack", page_icon=":material/monitor_heart:",
                   layout="wide")
ctx = shell.start()
navigation = st.navigation(shell.pages_for(ctx.viewer))
shell.sidebar(ctx)
navigation.run()
