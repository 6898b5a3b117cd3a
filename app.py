"""MNIST Live: the entry point only sets up the page and routes (no TensorFlow here)."""
import streamlit as st

from pages.common import collect_finished_jobs, remember_link_settings, sidebar

st.set_page_config(page_title="MNIST Live", page_icon=":material/draw:", layout="wide")
page = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/show_chart:"),
    st.Page("pages/draw.py", title="Draw", icon=":material/draw:"),
    st.Page("pages/explore.py", title="Explore", icon=":material/search:"),
])
remember_link_settings()
collect_finished_jobs()
sidebar()
page.run()
