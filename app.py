"""MNIST Live: the entry point sets up the page, finds this browser's workspace and routes (no TensorFlow here)."""
from pathlib import Path

import streamlit as st

from pages import common

st.set_page_config(page_title="MNIST Live", page_icon=str(Path(__file__).with_name("assets") / "icon.png"),
                   layout="wide")
page = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/show_chart:"),
    st.Page("pages/draw.py", title="Draw", icon=":material/draw:"),
    st.Page("pages/explore.py", title="Explore", icon=":material/search:"),
])
common.lab()  # the first page view of the server starts the training workers warming
workspace = common.workspace()
common.remember_link_settings()
common.sidebar(workspace)
common.show_notices(workspace)
page.run()
