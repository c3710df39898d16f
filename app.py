"""HepaTrack dashboard entry point (``hepatrack serve`` runs ``streamlit run app.py``).

The shell only wires things together: settings, viewer and store from ``ui.loaders``,
the page list from ``ui.shell.PAGES`` (filtered by role), the shared sidebar.
"""

import streamlit as st

from ui import shell

st.set_page_config(page_title="HepaTrack", page_icon=":material/monitor_heart:",
                   layout="wide")
ctx = shell.start()  # the login gate: nothing below runs for an anonymous session
pages = shell.pages_for(ctx.viewer)
# the menu is drawn by the shell (st.page_link), so the legacy pages/ menu can stay off
navigation = st.navigation(pages, position="hidden")
shell.sidebar(ctx, pages)
navigation.run()
