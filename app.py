"""MNIST Live: the entry point sets up the page, finds this browser's workspace and routes (no TensorFlow here)."""
from pages import streamlit_mends

streamlit_mends.install()  # first: a fresh server's first run imports a lot, and requests come in meanwhile

from pathlib import Path  # noqa: E402

import streamlit as st  # noqa: E402

from mnist_model.errors import MnistLiveError  # noqa: E402
from mnist_model.i18n import _  # noqa: E402
from mnist_model.store import StoreError  # noqa: E402
from pages import common  # noqa: E402

with streamlit_mends.whole_run():  # a session's first click is acted on where the page draws its button
    st.set_page_config(page_title="MNIST Live", page_icon=str(Path(__file__).with_name("assets") / "icon.png"),
                       layout="wide")
    common.use_app_navigation()
    try:
        common.lab().store.ping()  # the first page view of the server starts the training workers warming
        workspace, unreachable = common.workspace(), None
    except StoreError as exc:  # a shared database restarting or refusing us: a message and a retry, never a traceback
        workspace, unreachable = None, exc
    common.choose_language(workspace)
    page = st.navigation([
        st.Page("pages/home.py", title=_("Home"), icon=":material/home:", default=True),
        st.Page("pages/train.py", title=_("Train"), icon=":material/show_chart:"),
        st.Page("pages/draw.py", title=_("Draw"), icon=":material/draw:"),
        st.Page("pages/explore.py", title=_("Explore"), icon=":material/search:"),
        st.Page("pages/class.py", title=_("Class"), icon=":material/groups:", url_path="class"),
    ])
    if streamlit_mends.page_list_hidden():  # a fresh server's first runs: again at once, with the list
        st.rerun()  # (a run that acts on a click its session never drew goes on to its end first: see whole_run)
    try:
        if unreachable is not None:
            raise unreachable
        common.remember_link_settings()
        workspace.note_presence()
        status = common.sidebar(workspace, page.url_path)
        common.show_notices(workspace)
    except StoreError as exc:
        common.unavailable(exc)
        st.stop()
    try:
        with common.routed():
            page.run()
    except MnistLiveError as exc:  # a store that fails mid-page (a full disk, say): said in plain words
        st.error(str(exc))
    common.sidebar_status(workspace, status)  # after the page: the model it chose in this rerun
    common.forget_presses_not_acted_on()
