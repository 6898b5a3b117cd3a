"""What every page shares: the server's Lab, this browser's workspace, cached datasets, the sidebar, charts."""
from __future__ import annotations

import functools
import gc
import textwrap
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import altair as alt
import numpy as np
import pandas as pd
import pyarrow as pa
import streamlit as st
from streamlit import dataframe_util

from mnist_model.config import TrainConfig, from_query
from mnist_model.data import Dataset, load_dataset, translated_title
from mnist_model.errors import MnistLiveError
from mnist_model import i18n, palette
from mnist_model.i18n import N_, _
from mnist_model.lab import Lab
from mnist_model.runs import Run
from mnist_model.workspace import Workspace
from pages.streamlit_mends import uninterrupted

WORKSPACE_COOKIE = "mnist_live_workspace"
WORKSPACE_PARAM = "workspace"  # only in the "Use on another device" link, never in a settings link
JOIN_PARAM = "join"  # the class join link's code
APP_PARAMS = (WORKSPACE_PARAM, JOIN_PARAM)  # query parameters that are not Train settings
COOKIE_MAX_AGE_S = 400 * 86400  # the longest a browser keeps a cookie (Chrome caps it at 400 days)
PAGES = ("train", "draw", "explore", "class")  # url paths of the pages after the home page
RETRY_S = 3  # how often a page tries the store again while it cannot be reached
NUMBERS_ROWS = 500  # the most rows a chart's table shows (a big class's board: one row per run)


# ---------------------------------------------------------------- routing

_ROUTED = ContextVar("routed", default=False)  # True while app.py runs the page (see through_the_app)


def use_app_navigation() -> None:
    """app.py's first call: from now on Streamlit runs app.py for every request, and shows its page list.

    Until some script has called st.navigation, Streamlit treats pages/ as a folder of pages (its first multipage
    API): a fresh server's first requests run the asked page's file bare, under a list of the folder's file names
    (app, class, common, ...). .streamlit/config.toml hides sidebar navigation so that list never shows; it is
    turned on here, for the app's own list. Both switches are process-wide and stay."""
    from streamlit.runtime.pages_manager import PagesManager
    PagesManager.uses_pages_directory = False
    if not st.get_option("client.showSidebarNavigation"):
        st.set_option("client.showSidebarNavigation", True)


@contextmanager
def routed():
    """app.py runs the chosen page inside this."""
    token = _ROUTED.set(True)
    try:
        yield
    finally:
        _ROUTED.reset(token)


def through_the_app() -> None:
    """Every page's first call: a page that Streamlit ran straight from the pages/ folder runs again through app.py
    (in this same run: a rerun would drop the click that started it).

    That happens to a fresh server's first requests (see use_app_navigation); several at once (a class's tabs
    reconnecting after a restart) each run bare, also those that started just before the first one switched."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx(suppress_warning=True)
    if not _ROUTED.get() and ctx is not None:  # (without a script run: imported as a module, by a test say)
        import runpy
        runpy.run_path(ctx.pages_manager.main_script_path, run_name="__main__")
        st.stop()


# ---------------------------------------------------------------- server-wide, read-only or services

@st.cache_resource(show_spinner="Loading the dataset (once per server)...")
def dataset(name: str = "mnist") -> Dataset:
    """The read-only dataset, shared by every session of this server."""
    return load_dataset(name)


@st.cache_resource(show_spinner=False)
def novelty_check(name: str = "mnist"):
    """Read-only: the dataset's 'does this look like anything it learned from?' check, fitted once per server."""
    from mnist_model.novelty import NoveltyCheck
    return NoveltyCheck.fit(dataset(name).x_train, noun="digits" if name == "mnist" else "garments")


@st.cache_resource(show_spinner=False)
def lab() -> Lab:
    """The server's training service: its store and its executor, whose workers start warming now."""
    from mnist_model.executors import make_executor
    from mnist_model.store import open_server_store
    return Lab(open_server_store(), make_executor())


@st.cache_resource(max_entries=64, show_spinner=False)
def _predictor(run_id: str, _run: Run):
    from mnist_model.predict import Predictor
    return Predictor.for_run(_run)


def predictor(run: Run):
    """The run's NumPy forward pass, built once per server (a run's weights never change)."""
    return _predictor(run.run_id, run)


def test_probabilities(run: Run, ds: Dataset) -> np.ndarray:
    """(n_test, 10) probabilities of run's model on ds's test set (from training, else computed once)."""
    if run.test_probs is not None and len(run.test_probs) == len(ds.y_test):
        return run.test_probs
    return _computed_test_probabilities(run.run_id, ds.name, run, ds)


@st.cache_resource(max_entries=16, show_spinner="Running the test set through the model...")
def _computed_test_probabilities(run_id: str, dataset_name: str, _run: Run, _ds: Dataset) -> np.ndarray:
    """Read-only: a run's weights never change, so its test-set answers can be shared server-wide."""
    predict = predictor(_run)
    return np.concatenate([predict(_ds.x_test[i:i + 500] / 255.0) for i in range(0, len(_ds.x_test), 500)])


@st.cache_resource(show_spinner=False)
def probability_bars(language: str) -> dict:
    """The probability bars as a Vega-Lite spec without data, built once per language: Altair building it anew for
    every stroke was half of a stroke's server time."""
    empty = pd.DataFrame({"label": pd.Series(dtype=str), "probability": pd.Series(dtype=float),
                          "winner": pd.Series(dtype=bool)})
    spec = alt.Chart(empty).mark_bar().encode(
        x=alt.X("label:N", sort=None, title=None),
        y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1]), title=_("probability")),
        color=alt.condition("datum.winner", alt.value(palette.WINNER), alt.value(palette.OTHERS)),
        tooltip=[alt.Tooltip("label:N", title=_("label")),
                 alt.Tooltip("probability:Q", title=_("probability"), format=".1%")]).properties(height=200).to_dict()
    spec.pop("data", None)
    spec.pop("datasets", None)
    return spec


# ---------------------------------------------------------------- this browser's workspace

def workspace() -> Workspace:
    """This browser's workspace: the session's, else the one its link or cookie names, else a fresh one."""
    ws = st.session_state.get("workspace")
    if ws is not None and (ws.lab is lab()):
        return ws
    ws, why = _find_workspace()
    if ws is None:
        ws = lab().new_workspace()
    st.session_state["workspace"] = ws
    if why:
        st.session_state["workspace_news"] = why
    return ws


def _find_workspace() -> tuple[Workspace | None, str]:
    """The workspace that this session's link (?workspace=) or cookie names, and what to tell the user."""
    linked = st.query_params.get(WORKSPACE_PARAM)
    if linked is not None:
        del st.query_params[WORKSPACE_PARAM]
        found = lab().workspace(linked)
        return (found, _("Opened the workspace from your link.")) if found else (
            None, _("That workspace link is not valid any more (or the workspace was removed after long disuse): "
                    "this is a fresh workspace."))
    remembered = st.context.cookies.get(WORKSPACE_COOKIE)
    if remembered:
        found = lab().workspace(remembered)
        return (found, "") if found else (
            None, _("Your earlier workspace is not on this server any more (unused for a long time?): this is a "
                    "fresh one."))
    return None, ""


def start_over() -> None:
    """A fresh, empty workspace for this browser (the old one stays on the server until it is pruned)."""
    st.session_state["workspace"] = lab().new_workspace()
    for key in [k for k in st.session_state if k.startswith("w_") or k in ("link_settings", "settings_generation")]:
        del st.session_state[key]


_COOKIE_JS = """
export default function(component) {
  const { data, setStateValue } = component;
  const pair = data.name + "=" + data.id;
  const has = () => document.cookie.split("; ").includes(pair);
  if (!has()) {
    document.cookie = pair + "; Max-Age=" + data.maxAge + "; Path=/; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
  }
  // Only a failure is reported: a report reruns the page, which a normal visit should not pay for.
  if (!has() && data.known !== "blocked") setStateValue("kept", "blocked");
  // After a server restart the tab reconnects to a new session that has not run the page: Streamlit sends the
  // next widget change as a rerun of the fragment it belongs to, which the new session does not know and drops
  // (a drawing got no answer until a reload). So when the app's socket opens again, the whole page reruns.
  // It also says which canvas it shows (Draw's Clear mounts each under a new key): the new session draws that one,
  // so the drawing on screen stays and is answered rather than replaced by an empty canvas.
  const canvasShown = () => {
    const found = document.querySelector('[class*="st-key-canvas_"]');
    const match = found && found.className.match(/st-key-canvas_(\\d+)/);
    return match ? Number(match[1]) : null;
  };
  const rerun = () => setStateValue("reconnected", { at: Date.now(), canvas: canvasShown() });
  // Such a rerun names the page the tab shows. Sent just after a click on another page, whose run had not started
  // yet, it took the switch back (Streamlit runs the newer request's page: walker seed 66), so after a recent page
  // switch it waits until the switch's run is over.
  if (!window.__mnistLiveNavWatch) {
    window.__mnistLiveNavWatch = true;
    document.addEventListener("click", (event) => {
      const link = event.target.closest && event.target.closest('[data-testid="stSidebarNav"] a, [data-testid^="stPageLink"] a, a[data-testid^="stPageLink"]');
      if (link) window.__mnistLiveNavAt = Date.now();
    }, true);
  }
  window.__mnistLiveRerun = () => (Date.now() - (window.__mnistLiveNavAt || 0) < 5000 ? afterNextRun(rerun) : rerun());
  // A change sent while that run has not yet drawn the page (a stroke in its first second or two) names a fragment
  // the new session does not know yet, and Streamlit drops it: once that run is over, the page reruns once more
  // with what the browser holds by then.
  // When no run starts within 2 s there is none to wait for (the switch's ran before the restart, and a new server
  // runs nothing unasked): go on at once, or the new session never ran and dropped every stroke (walker seed 39).
  const afterNextRun = (then) => {
    const app = document.querySelector('[data-testid="stApp"]');
    let ran = false;
    const started = Date.now();
    const watch = setInterval(() => {
      const state = app && app.dataset.testScriptState;
      if (state === "running" || state === "rerunRequested") ran = true;
      else if (ran || Date.now() - started > 2000) {
        clearInterval(watch);
        then();
      }
    }, 50);
  };
  if (!window.__mnistLiveSocketWatch) {
    window.__mnistLiveSocketWatch = true;
    const Native = window.WebSocket;
    const Watched = function (url, protocols) {
      const socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
      if (String(url).includes("/_stcore/stream")) {  // created after the first one: a reconnection
        socket.addEventListener("open", () => setTimeout(() => {
          window.__mnistLiveRerun();
          afterNextRun(() => window.__mnistLiveRerun());
        }, 250));
      }
      return socket;
    };
    Watched.prototype = Native.prototype;
    for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Watched[name] = Native[name];
    window.WebSocket = Watched;
  }
}
"""


CANVAS_GENERATION = "canvas_n"  # session state: the number in Draw's canvas key (Clear mounts a new canvas)
RECONNECT_SEEN = "reconnect_seen"  # session state: the last reconnection this session has taken the canvas from
CANVAS_CLEARED = "canvas_cleared"  # session state: Clear was pressed in this session (it chose the canvas since)


@st.cache_resource
def _cookie_component():
    return st.components.v2.component("mnist_live_workspace_cookie", js=_COOKIE_JS)


def cookies_blocked() -> bool:
    """True once the browser has shown that it keeps no cookies."""
    return st.session_state.get("cookie_kept") == "blocked"


def remember_workspace(ws: Workspace) -> None:
    """Have the browser keep the workspace id in a cookie; warn once when it cannot."""
    result = _cookie_component()(data={"name": WORKSPACE_COOKIE, "id": ws.id, "maxAge": COOKIE_MAX_AGE_S,
                                       "known": st.session_state.get("cookie_kept")}, key="workspace_cookie",
                                 height=0, on_kept_change=lambda: None, on_reconnected_change=lambda: None)
    reconnected = getattr(result, "reconnected", None)
    if isinstance(reconnected, dict) and reconnected.get("at") != st.session_state.get(RECONNECT_SEEN):
        st.session_state[RECONNECT_SEEN] = reconnected.get("at")  # once per reconnection: Clear then moves on
        # A tab reports again after its next run, and a report read from the page as Clear was pressed names the
        # canvas Clear replaced (it put that one back: walker seed 66): after a Clear in this session, none is taken.
        if isinstance(reconnected.get("canvas"), int) and not st.session_state.get(CANVAS_CLEARED):
            st.session_state[CANVAS_GENERATION] = reconnected["canvas"]
    if getattr(result, "kept", None) == "blocked" and not cookies_blocked():
        st.session_state["cookie_kept"] = "blocked"
        st.warning(_("This browser does not keep cookies, so your work here will not survive a reload or a closed "
                     "tab. It stays while this tab is open; download models you want to keep."))


_PAGE_JS = """
export default function(component) {
  const { data } = component;
  const last = window.__mnistLivePage;
  window.__mnistLivePage = data.page;
  // Streamlit loads the code of some parts (the charts) when one is first shown. If that fetch fails (the server
  // was restarted just then, a network blip) the browser keeps the failure until the page loads again, and the part
  // shows "Failed to fetch dynamically imported module" (walker seed 52): when that is still so 5 s after the
  // server answers and the page has run (a failure during a restart often heals as the new session redraws the part,
  // and a reload would lose the drawing on the canvas), load the page again.
  if (!window.__mnistLiveImportWatch) {
    window.__mnistLiveImportWatch = true;
    let failedSince = null;
    setInterval(() => {
      const app = document.querySelector('[data-testid="stApp"]');
      const settled = app && app.dataset.testConnectionState === "CONNECTED"
        && !["running", "rerunRequested"].includes(app.dataset.testScriptState);
      const failed = settled && [...document.querySelectorAll('[data-testid="stAlertContentError"], [data-testid="stException"]')]
        .some((e) => e.textContent.includes("dynamically imported module"));
      failedSince = failed ? (failedSince || Date.now()) : null;
      const last = Number(sessionStorage.getItem("mnistLiveReloadedAt") || 0);
      if (failedSince && Date.now() - failedSince > 5000 && Date.now() - last > 30000) {
        sessionStorage.setItem("mnistLiveReloadedAt", String(Date.now()));
        location.reload();
      }
    }, 1000);
  }
  // A rerun that turns off the button a keyboard user just pressed (Train while it trains, Stop once stopped), or
  // draws the focused control anew, drops the focus to the top of the page: it goes to the nearest working control.
  if (!window.__mnistLiveFocusKeeper) {
    window.__mnistLiveFocusKeeper = true;
    let focused = null, block = null, timer = null, keyboard = false, history = [];
    document.addEventListener("keydown", () => { keyboard = true; }, true);
    document.addEventListener("pointerdown", () => { keyboard = false; }, true);
    const usable = (e) => e && e.isConnected && !e.disabled && e.getClientRects().length > 0;
    const name = (e) => (e.getAttribute("aria-label") || e.textContent || "").trim();
    const controls = (root) => [...root.querySelectorAll("button, input, textarea, [role=tab], a[href]")];
    document.addEventListener("focusin", (event) => {
      focused = event.composedPath()[0] || event.target;
      history = [...history.filter((e) => e !== focused), focused].slice(-8);
      block = focused.closest && focused.closest('[data-testid="stHorizontalBlock"], [data-testid="stForm"]');
    }, true);
    const rescue = () => {
      timer = null;
      // Lost: on the body, or still on the turned-off control (the browser moves it to the body only when it next
      // draws the page: under load that came after this ran, and nothing changed later to run it again; CI)
      if (!keyboard || !focused || usable(focused)) return;
      if (![document.body, focused].includes(document.activeElement)) return;
      const same = controls(document).find((e) => usable(e) && e.tagName === focused.tagName
                                                   && name(e) === name(focused));
      // The focused control's block, or, when the rerun drew that block anew, the block its twin is in now (Train,
      // off while it trains, beside Stop: a slow rerun redrew the row and the focus stayed on the page's body)
      const twin = controls(document).find((e) => e.tagName === focused.tagName && name(e) === name(focused));
      const row = block && block.isConnected ? block
        : twin && twin.closest('[data-testid="stHorizontalBlock"], [data-testid="stForm"]');
      const near = row ? controls(row).find(usable) : null;
      const back = [...history].reverse().find(usable);  // after Cancel: the button that opened the question
      const next = same || near || back;
      if (next) next.focus({ focusVisible: true });
    };
    const soon = () => { if (!timer) timer = setTimeout(rescue, 250); };
    document.addEventListener("focusout", soon, true);
    new MutationObserver(soon).observe(
      document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["disabled"] });
  }
  // Components in a shadow root (the drawing canvas), as each attaches its shadow root:
  // - Its stylesheet comes by a <link> that does not hold back drawing: under load the new canvas Clear mounts was
  //   drawn unstyled for a frame or more, 288 px lower (its background layer above it), then jumped into place,
  //   and a stroke begun there missed it (CI, 4 December). Such a component stays invisible until its
  //   stylesheets have loaded (2 s at most).
  // - The canvas's toolbar (streamlit-drawable-canvas; the page's styles cannot reach it) waits, invisible, over
  //   the canvas's top right corner and moves up only 0.1 s after the mouse arrives: a stroke started there at
  //   once, or by a finger (no hover), hit the hidden toolbar (lost, or a hidden Undo). Here it always sits above
  //   the canvas, takes pointers only while shown, and its buttons are 24 px targets.
  if (!window.__mnistLiveShadowRoots) {
    window.__mnistLiveShadowRoots = true;
    const toolbar = ".dc-root>.dc-toolbar{top:-2.75rem!important;padding-bottom:0!important;"
      + "pointer-events:none!important}.dc-root:hover>.dc-toolbar,.dc-root>.dc-toolbar:focus-within,"
      + ".dc-root>.dc-toolbar[data-pinned=true]{pointer-events:auto!important}"
      + ".dc-root .dc-icon-button{min-width:24px;min-height:24px}";
    const placeToolbar = (root) => {
      if (root.__mnistLiveStyled || !root.querySelector(".dc-toolbar")) return;
      const sheet = document.createElement("style");
      sheet.className = "mnist-live-canvas-toolbar";
      sheet.textContent = toolbar;
      root.appendChild(sheet);
      root.__mnistLiveStyled = true;
    };
    const tend = (host, root) => {
      const loading = new Set(), seen = new WeakSet();  // a link that failed or took 2 s is not waited for again
      const check = () => {
        for (const link of root.querySelectorAll('link[rel="stylesheet"]')) {
          if (link.sheet || seen.has(link)) continue;
          seen.add(link);
          loading.add(link);
          const done = () => { loading.delete(link); check(); };
          link.addEventListener("load", done, { once: true });
          link.addEventListener("error", done, { once: true });
          setTimeout(done, 2000);
        }
        for (const link of [...loading]) if (link.sheet || !link.isConnected) loading.delete(link);
        host.style.visibility = loading.size ? "hidden" : "";
        placeToolbar(root);
      };
      new MutationObserver(check).observe(root, { childList: true, subtree: true });  // before the next frame
      check();
    };
    const attach = Element.prototype.attachShadow;
    Element.prototype.attachShadow = function (init) {
      const root = attach.call(this, init);
      if (this.getAttribute("data-testid") === "stBidiComponentIsolated") tend(this, root);
      return root;
    };
    // Those mounted before this script ran (the page's first run): tended from now on
    document.querySelectorAll('[data-testid="stBidiComponentIsolated"]').forEach(
      (host) => host.shadowRoot && tend(host, host.shadowRoot));
  }
  // An expander animates its height for half a second when it opens and whenever its content grows, clipping
  // what is below the moving edge, and the content jumps by up to 50 px meanwhile: "Yes, start over", drawn in
  // the workspace panel 0.1 s after the panel opened, slid away under a click (the press never reached it: long
  // walker seeds 58, 61, 76, 86). Here expanders open, close and grow at once, and controls stay where drawn.
  if (!window.__mnistLiveStillExpanders) {
    window.__mnistLiveStillExpanders = true;
    const animate = HTMLDetailsElement.prototype.animate;
    HTMLDetailsElement.prototype.animate = function (keyframes, options) {
      const still = this.closest('[data-testid="stExpander"]')
        ? { ...(typeof options === "number" ? {} : options), duration: 0 } : options;
      return animate.call(this, keyframes, still);
    };
  }
  // On a phone the open sidebar covers the page: close it once the user has picked a page in it. Either side may
  // be the one that saw the switch: the server (on a slow phone this script may first run only on the new page),
  // or this script (the server's switch run was cut short by another rerun, so the next one looks like no switch).
  // The sidebar's button may come a moment after the page.
  const switched = data.switched || (last !== undefined && last !== data.page);
  if (!switched || window.innerWidth > data.narrow) return;
  const started = Date.now();
  const close = () => {
    const collapse = document.querySelector('button[aria-label="Collapse sidebar"]');
    if (collapse && collapse.getAttribute("aria-expanded") === "true") return collapse.click();
    if (!collapse && Date.now() - started < 3000) setTimeout(close, 100);
  };
  close();
}
"""
NARROW_PX = 768  # below this Streamlit lays the sidebar over the page
PAGE_DRAWN = "page_drawn"  # session state: the page this session drew last


@st.cache_resource
def _page_component():
    return st.components.v2.component("mnist_live_page", js=_PAGE_JS)


def page_behaviours(page_name: str) -> None:
    """In the browser: the focus stays on a working control when a rerun turns off the focused one; the drawing
    canvas's toolbar never covers the canvas, and the canvas shows only once styled (never first out of place);
    expanders open and grow at once (their controls never slide under a click); on narrow screens the sidebar
    closes after every page switch (it stays open over the page otherwise)."""
    last = st.session_state.get(PAGE_DRAWN)
    st.session_state[PAGE_DRAWN] = page_name
    _page_component()(data={"page": page_name, "switched": last not in (None, page_name), "narrow": NARROW_PX},
                      key="phone_nav", height=0)


def base_url() -> str:
    """The app's address as the browser sees it, without page or query: 'http://host:8501/'."""
    parts = urlsplit(st.context.url or "http://localhost:8501/")
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[-1] in PAGES:
        segments.pop()
    return urlunsplit((parts.scheme, parts.netloc, "/" + "".join(s + "/" for s in segments), "", ""))


def is_local(link: str) -> bool:
    """True for links to this computer's own address, which other devices cannot reach."""
    return urlsplit(link).hostname in ("localhost", "127.0.0.1", "::1")


def device_link(ws: Workspace) -> str:
    """The link that opens this workspace elsewhere (it carries the id: whoever has it sees the work)."""
    return base_url() + "?" + urlencode({WORKSPACE_PARAM: ws.id})


def qr_png(text: str, scale: int = 6) -> bytes:
    """A QR code of text as PNG bytes (segno)."""
    import io

    import segno
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


LANGUAGE_KEY = "language"  # session state: the language this session's pages speak


def in_language(key: str) -> str:
    """The key of a widget whose options are shown translated, for this language.

    A choice widget's value travels as its label: a request the browser sent before a language switch (a training
    page's timer, say) names the old language's label, which matches no option of the new one and came back as the
    label itself ("Dígitos MNIST" as the dataset). Under a key of its own language the old value names a widget that
    is gone."""
    return f"{key}__{i18n.current()}"


def choose_language(ws: Workspace | None) -> str:
    """Use the workspace's chosen language, else the browser's (st.context.locale); returns its code."""
    code = st.session_state.get(LANGUAGE_KEY)
    if code is None:
        try:
            chosen = ws.language if ws is not None else None
        except MnistLiveError:  # the store is away: the browser's language until it is back
            chosen = None
        code = chosen if chosen in i18n.LANGUAGES or chosen == i18n.PSEUDO else i18n.from_browser(st.context.locale)
        st.session_state[LANGUAGE_KEY] = code
    return i18n.use(code)


def language_switch(ws: Workspace) -> None:
    """The sidebar's language menu, each language in its own name; the choice is kept in the workspace."""
    codes = list(i18n.LANGUAGES)
    current = i18n.current()
    if current not in codes:  # the test language: shown, never offered
        codes.append(current)
    picked = st.selectbox(_(":material/translate: Language"), codes, index=codes.index(current),
                          format_func=lambda c: i18n.LANGUAGES.get(c, c), key=f"language_{current}")
    if picked != current:
        with plain_errors():
            ws.language = picked
        st.session_state[LANGUAGE_KEY] = picked
        st.rerun()


def workspace_panel(ws: Workspace) -> None:
    """The sidebar's workspace controls: where work is kept, another device, start over."""
    with st.expander(_("Your workspace")):
        temporary, remembered = ws.store.temporary, not cookies_blocked()
        st.caption({(False, True): _("Your runs and drawings are kept on this server, and this browser remembers "
                                     "them."),
                    (False, False): _("Your runs and drawings are kept on this server; this browser cannot "
                                      "remember them (no cookies)."),
                    (True, True): _("Your runs and drawings are kept in a temporary folder (lost when the server "
                                    "stops), and this browser remembers them."),
                    (True, False): _("Your runs and drawings are kept in a temporary folder (lost when the server "
                                     "stops); this browser cannot remember them (no cookies).")}[temporary, remembered])
        if st.toggle(_("Use on another device"), key="show_device_link"):
            link = device_link(ws)
            st.warning(_("Whoever has this link sees and changes this work."), icon=":material/key:")
            st.code(link, language=None, wrap_lines=True)
            if is_local(link):
                st.caption(_("This link uses this computer's own address: other devices need the server's network "
                             "address instead."))
            st.image(qr_png(link, 4), caption=_("Scan to open this workspace"), width=180,
                     alt=_("QR code of the link to this workspace"))
        ask_first(st, _("Start over"), _("Your current runs stay on the server, but this browser will open the new, "
                                         "empty workspace from now on (keep the device link to come back)."),
                  _("Yes, start over"), start_over, help=_("A fresh, empty workspace in this browser."))


def show_notices(ws: Workspace) -> None:
    """Server-wide store problems (on every page), then this workspace's messages (once each)."""
    for notice in lab().store.notices:  # written as the server started: said in this page's language
        st.warning(i18n.said(notice), icon=":material/warning:")
    news = st.session_state.pop("workspace_news", "")
    if news:
        st.info(_(news))  # said before the page knew its language: in English, translated here
    for notice in ws.notices():
        st.info(notice)


def fragment(func, run_every=None):
    """st.fragment(func, run_every=...) whose library errors (a database that does not answer, say) show as a
    message in its place, and it tries again at its next tick."""
    @functools.wraps(func)  # the same module and name: Streamlit's fragment id stays the function's
    def plainly(*args, **kwargs):
        i18n.use(st.session_state.get(LANGUAGE_KEY))  # a fragment's rerun does not pass through app.py
        with plain_errors():
            return func(*args, **kwargs)
    return st.fragment(plainly, run_every=run_every)


def unavailable(exc: MnistLiveError) -> None:
    """The page in place of a page when the store cannot be reached: what happened, and a retry every few seconds."""
    st.error(_("{problem} Nothing you saved is lost: this page tries again by itself every few seconds.").format(
        problem=exc), icon=":material/cloud_off:")
    st.fragment(_retry, run_every=RETRY_S)()


def _retry() -> None:
    try:
        lab().store.ping()
    except MnistLiveError:
        return
    st.rerun(scope="app")


@contextmanager
def plain_errors():
    """Show the library's errors (a full disk, a busy database, a bad file) as messages, never a traceback."""
    try:
        yield
    except MnistLiveError as exc:
        st.error(str(exc))


@contextmanager
def refusal_kept(key: str):
    """In a callback (before the page draws): what the library refuses (MnistLiveError) is kept under key for the
    page to say with show_refusal, where the button is."""
    try:
        yield
    except MnistLiveError as exc:
        st.session_state[key] = str(exc)


def show_refusal(key: str, say) -> bool:
    """Say (say: st.error, where.warning...) the refusal kept under key, once; whether there was one."""
    refused = st.session_state.pop(key, None)
    if refused:
        say(refused)
    return bool(refused)


def uncut(action):
    """action as a widget's callback that runs uninterrupted (a form's submit button, say)."""
    @functools.wraps(action)
    def callback(*args) -> None:
        with uninterrupted():
            i18n.use(st.session_state.get(LANGUAGE_KEY))  # callbacks run before app.py has set the language
            action(*args)
    return callback


def button(where, label: str, action, args: tuple = (), key: str | None = None, **kwargs) -> bool:
    """where.button(label) whose action(*args) runs once per press, in the button's callback: Streamlit runs it
    before the page, and a rerun the browser asks for meanwhile cannot cut it short (uninterrupted). Also when the
    press is a session's first message: a tab that reconnects after a server restart sends its click to a new
    session, which has no callbacks yet (Streamlit registers them as the script draws the buttons) and would drop it.
    Returns whether a press was acted on since the page last drew this button (for what the page does after)."""
    key = key or f"button_{label}"
    ran, drawn = f"_pressed_{key}", f"_drawn_{key}"

    def act(*a) -> None:
        st.session_state[ran] = True
        action(*a)

    clicked = where.button(label, key=key, on_click=uncut(act), args=args, **kwargs)
    first_drawing = drawn not in st.session_state
    st.session_state[drawn] = True
    if st.session_state.pop(ran, False):
        return True
    if clicked and first_drawing:  # no callback ran: act now, then redraw what it changed (never for a press
        action(*args)  # that Streamlit replays to a later run, whose callback has run already)
        st.rerun()
    return False


PRESSES = "presses"  # session state: keys of pressed() buttons whose press the page has not yet acted on
DRAWN_PRESSABLE = "drawn_pressable"  # session state: keys of the pressed() buttons drawn since the last full run


def pressed(where, label: str, key: str, action, **kwargs) -> bool:
    """where.button(label) whose action() runs where the button is drawn, with what the other widgets hold in this
    very run (Keep it: the drawing and its label), uninterrupted and with plain errors. Once per press, also when
    the run the press started was cut short before it came here: the button's callback keeps the press until then.
    Returns whether it acted (an action that reruns does not return)."""
    presses = st.session_state.setdefault(PRESSES, set())
    first_drawing = f"_drawn_{key}" not in st.session_state
    st.session_state[f"_drawn_{key}"] = True
    st.session_state.setdefault(DRAWN_PRESSABLE, set()).add(key)
    with uninterrupted():  # from taking the press to the action's end nothing can cut in
        clicked = where.button(label, key=key, on_click=uncut(presses.add), args=(key,), **kwargs)
        if kwargs.get("disabled"):  # a press kept from before the button was turned off is not acted on
            presses.discard(key)
            return False
        if key not in presses and not (clicked and first_drawing):  # a session's first message has no callback
            return False  # yet: its trigger says
        presses.discard(key)
        with plain_errors():
            action()
        return True


def forget_presses_not_acted_on() -> None:
    """At the end of a full run: a press whose button this run did not draw (the user went to another page first)
    is dropped rather than acted on when its button comes back."""
    presses, drawn = st.session_state.get(PRESSES), st.session_state.pop(DRAWN_PRESSABLE, set())
    if presses:
        presses.intersection_update(drawn)


ASKING = "asking_first"  # session state: (title, about) of the button whose confirmation is open
ASK_REFUSED = "ask_first_refused"  # session state: what the library said when a confirmed action failed


def ask_first(where, title: str, what: str, yes: str, action, panel=None, about: str = "",
              help: str | None = None) -> None:
    """A button (in where) that asks before it acts: a press opens, in panel (by default under the button), what
    it does, the confirming button and Cancel; action() runs only on the confirming one. (In the page, not a
    popover: a popover opened near the page's end was drawn below the window, out of reach.)
    about: what the action is for (a run's id). The question belongs to it: when the page comes to show another
    (a training ended), the question closes rather than ask the same about the new one, and a confirming click
    that lands as the page changes acts on what was asked about, never on what replaced it."""
    held = st.session_state.get(ASKING)
    if held is not None and held[0] == title and held[1] != about:
        del st.session_state[ASKING]  # asked about what the page no longer shows: closed, not back when it returns
    asking = held == (title, about)
    button(where, title, _ask, args=(None if asking else (title, about),), key=f"ask_{title}_{about}",
           width="stretch", help=help)
    show_refusal(ASK_REFUSED, (panel or where).error)
    if not asking:
        return
    with (panel or where).container(border=True):
        st.caption(what)
        button(st, yes, _confirmed, args=(action,), key=f"ask_yes_{title}_{about}", type="primary", width="stretch")
        button(st, _("Cancel"), _ask, args=(None,), key=f"ask_cancel_{title}_{about}", width="stretch")


def _ask(asking: tuple[str, str] | None) -> None:
    st.session_state[ASKING] = asking


def _confirmed(action) -> None:
    st.session_state.pop(ASKING, None)
    with refusal_kept(ASK_REFUSED):
        action()


# ---------------------------------------------------------------- settings

def remember_link_settings() -> None:
    """Keep the Train settings of the link the session was opened with: page switches drop them from the URL."""
    if "link_settings" not in st.session_state:
        st.session_state["link_settings"] = {k: v for k, v in st.query_params.to_dict().items()
                                             if k not in APP_PARAMS}


def config() -> TrainConfig:
    """This session's settings: the Train page's, else the opening link's, else the workspace's last ones."""
    if "config" in st.session_state:
        return st.session_state["config"]
    link = st.session_state.get("link_settings", {})
    if link:
        return from_query(link)[0]
    return workspace().settings() or TrainConfig()


def draw_title(dataset_name: str) -> str:
    """The Draw page's title (and its link's label) for a dataset, as one sentence to translate."""
    return {"fashion": _("Draw a piece of clothing")}.get(dataset_name, _("Draw a digit"))


def load_or_explain(name: str) -> Dataset | None:
    """The named dataset, or None with the reason shown on the page."""
    try:
        return dataset(name)
    except MnistLiveError as exc:
        st.error(_("The {dataset} dataset is not available: {why}").format(dataset=name, why=exc))
        return None


def sidebar(ws: Workspace, page_name: str = ""):
    """The sidebar's workspace controls; returns the place under them that sidebar_status fills once the page has
    run (so that it shows the model the page chose in this very rerun)."""
    with st.sidebar:
        # The status goes below the controls: its lines come and go and wrap (a training starts and ends, the model's
        # label grows), and above the workspace panel each change moved the panel as people turned to it (a click
        # aimed at "Yes, start over" landed on the text above it: walker seed 54; a click on "Use on another device"
        # just after a training missed the switch: 2 in 17 clean-clone runs).
        workspace_panel(ws)
        language_switch(ws)
        # The status also keeps its height through the run (the language switch's menu opens downwards over it). The
        # browser keeps the children of a block sent again at the same place, so a container here keeps the last
        # run's lines until sidebar_status draws over them. Drawing anything into it first would not do: each message
        # is drawn on its own, and an empty slot, then its empty container, then line after line was seen frame by
        # frame under load (a preset's rerun). A session's first run (a new tab, a reload, a reconnection) has no
        # last status: it draws what the status says now, in a slot that sidebar_status replaces.
        if STATUS_LINES in st.session_state:
            place = st.container()
            status_place = lambda: place  # noqa: E731
        else:
            slot = st.empty()
            lines = st.session_state[STATUS_LINES] = status_lines(ws, ws.model_run(), False)[0]
            with slot.container(), st.container():
                for line in lines:
                    st.caption(line)
            status_place = slot.container
        remember_workspace(ws)
        page_behaviours(page_name)
    st.session_state[FOLLOWED_HERE] = False  # until the page says it follows the training itself
    st.session_state[MODELS_SHOWN] = set()  # until the page reads the model it shows
    return status_place


STATUS_LINES = "status_lines"  # session state: what the sidebar's status said last
STATUS_POLL_S = 1.0  # how often the sidebar's training line follows a training
STATUS_QUEUED_POLL_S = 3.0  # the same while it waits for a slot (Train's own panel says when it starts)
FOLLOWED_HERE = "page_follows_training"
MODELS_SHOWN = "models_shown"  # session state: the run ids of the models in use that this page run showed
CAUGHT_UP = "model_caught_up"  # session state: the (shown, in use) pair the last catch-up rerun was for


def model_in_use(ws: Workspace) -> Run | None:
    """ws.model_run(), noted as what this page shows: when a training ends as the page runs (and so the model in
    use changes), the sidebar's status sees the difference and reruns the page (walker seed 4: Draw said Run 3
    and the sidebar Run 4)."""
    run = ws.model_run()
    st.session_state.setdefault(MODELS_SHOWN, set()).add(run.run_id if run is not None else None)
    return run


def _catch_up_with(run: Run | None) -> None:
    """Rerun the page when it showed another model than the one now in use (once per pair: never a loop)."""
    in_use = run.run_id if run is not None else None
    stale = st.session_state.get(MODELS_SHOWN, set()) - {in_use}
    if stale and st.session_state.get(CAUGHT_UP) != (tuple(sorted(map(str, stale))), in_use):
        st.session_state[CAUGHT_UP] = (tuple(sorted(map(str, stale))), in_use)
        st.rerun()


def follow_training_here() -> None:
    """The page shows the training's progress in a ticking panel of its own, which reruns the page when the training
    ends: the sidebar's line then does not tick too. (Two timers on one page cut each other's runs short, and the
    cut one waits for its next tick; each tick also costs the server a few ms.)"""
    st.session_state[FOLLOWED_HERE] = True


def sidebar_status(ws: Workspace, status_place) -> None:
    """Which model (and its data) is in use, the class, and the training's state, drawn after the page ran (in
    status_place(), from sidebar); while a training runs or waits it follows it."""
    with status_place():
        jobs = ws.jobs()
        followed = st.session_state.get(FOLLOWED_HERE, False)
        pace = (STATUS_QUEUED_POLL_S if jobs[0].state.value == "queued" else STATUS_POLL_S) if jobs else None
        fragment(_status, run_every=None if followed else pace)(ws, bool(jobs), followed)


def _status(ws: Workspace, was_busy: bool, followed: bool = False) -> None:
    run = ws.model_run()
    _catch_up_with(run)
    lines, jobs = status_lines(ws, run, followed)
    for line in lines:
        st.caption(line)
    # The browser keeps the children of a block drawn again at the same place (the last run's lines, see sidebar): a
    # line no longer said must be drawn over, or it stays for good ('Training: ...' after every
    # training on Train: walker seeds 0, 1, 2, 78). An empty element takes no room.
    for _missing in range(len(lines), len(st.session_state.get(STATUS_LINES, ()))):  # as drawn last
        st.empty()
    st.session_state[STATUS_LINES] = lines  # for the next run's start (sidebar): a run cut short keeps the last
    if was_busy and not jobs:
        st.rerun()  # it ended: the whole page, whose fragments (and this one) then stop ticking


def status_lines(ws: Workspace, run: Run | None, followed: bool) -> tuple[list[str], list]:
    """The sidebar's status: the data and model in use (run), the class, the training's state; and the jobs read."""
    lines = []
    if run is not None:
        lines.append(_("**Data:** {data}").format(data=translated_title(run.dataset)))
        lines.append(_("**Model:** {model}").format(model=run.label))
    else:
        cfg = config()
        try:
            lines.append(_("**Data:** {data}").format(data=dataset(cfg.dataset).title))
        except MnistLiveError:
            lines.append(_("**Data:** {data} (not available)").format(data=cfg.dataset))
        lines.append(_("**Model:** none yet - train one"))
    member = ws.membership()
    if member is not None:
        lines.append((_("**Class:** {code} (ended)") if member.ended else _("**Class:** {code}")).format(
            code=member.code))
    elif (taught := ws.teaching()) is not None and not taught.ended:
        lines.append(_("**Class:** {code} (you teach it)").format(code=taught.code))
    jobs = ws.jobs()
    for job in jobs[:1]:
        snap = job.snapshot()
        label = job.label
        if followed:
            lines.append(_("**Training:** {label} (its progress is on this page)").format(label=label))
        elif snap.state.value == "running" and snap.batch:
            lines.append(_("**Training:** {label}, epoch {epoch}/{epochs}").format(
                label=label, epoch=snap.batch.epoch, epochs=snap.batch.epochs))
        elif snap.queue_position:
            lines.append(_("**Training:** {label} queued (queue position {position})").format(
                label=label, position=snap.queue_position))
        elif snap.state.value == "queued":
            lines.append(_("**Training:** {label} queued").format(label=label))
        else:
            lines.append(_("**Training:** {label} running").format(label=label))
    if not jobs and (last := ws.latest_job()) is not None and last.state.done:
        # The line stays when a training ends, saying how it ended (the other pages have no panel that tells).
        lines.append({"finished": _("**Last training:** {label} finished"),
                      "stopped": _("**Last training:** {label} stopped"),
                      "failed": _("**Last training:** {label} failed")}[last.state.value].format(label=last.label))
    return lines, jobs


# ---------------------------------------------------------------- charts

def history_frame(epochs, run_name: str | None = None) -> pd.DataFrame:
    """Long-format per-epoch metrics: epoch, data (train/test), metric (loss/accuracy), value[, run]."""
    rows = []
    for m in epochs:
        for data, loss, acc in (("train", m.loss, m.accuracy), ("test", m.test_loss, m.test_accuracy)):
            rows.append({"epoch": m.epoch, "data": data, "metric": "loss", "value": loss})
            rows.append({"epoch": m.epoch, "data": data, "metric": "accuracy", "value": acc})
    frame = pd.DataFrame(rows, columns=["epoch", "data", "metric", "value"])
    if run_name is not None:
        frame["run"] = run_name
    return frame


TITLE_CHARS, SUBTITLE_CHARS = 34, 52  # a line of each that fits a chart 340 px wide (a phone, a half-page column)
TITLE_LINE_PX, SUBTITLE_LINE_PX = 20, 14  # what each further line takes from a chart of a given height


def titled(text: str, height: int, subtitle: list[str] | tuple = ()) -> dict:
    """A chart's title, subtitle and height (its properties): each line broken where it would not fit the chart
    (Vega cuts a title line short with "…", it never wraps one: German titles and the one-line train/test key lost
    their ends), and the height grown by the lines beyond one of each, so that the plot keeps its own."""
    lines = textwrap.wrap(text, TITLE_CHARS) or [text]
    below = [part for line in subtitle for part in textwrap.wrap(line, SUBTITLE_CHARS)]
    grown = height + TITLE_LINE_PX * (len(lines) - 1) + SUBTITLE_LINE_PX * max(0, len(below) - 1)
    return {"title": alt.TitleParams(lines[0] if len(lines) == 1 else lines, **({"subtitle": below} if below else {})),
            "height": grown}


ROBUST_COLOURS = (palette.FIRST_NETWORK, palette.OTHER_NETWORK)  # the first network (the model in use), the other
ROBUST_SHAPES = ("circle", "square")
TRAIN_TEST = ["train", "test"]
TRAIN_KEY, TEST_KEY = N_("train: solid line, dots"), N_("test: dashed line, triangles")  # Vega drops those legends


def train_test_key() -> list[str]:
    """A chart's subtitle that tells train from test, a line each (a chart title is cut, not wrapped, where it is too
    long: the German key on one line lost its end in a half-page column)."""
    return [_(TRAIN_KEY), _(TEST_KEY)]


def train_test_marks(colour: bool = True) -> dict:
    """Encodings that tell train from test by colour, dash and point shape (never by colour alone)."""
    marks = {"strokeDash": alt.StrokeDash("data:N", sort=TRAIN_TEST, legend=None),
             "shape": alt.Shape("data:N", sort=TRAIN_TEST, legend=None,
                                scale=alt.Scale(domain=TRAIN_TEST, range=["circle", "triangle-up"]))}
    if colour:
        marks["color"] = alt.Color("data:N", title=_("data"), scale=alt.Scale(domain=TRAIN_TEST,
                                                                           range=[palette.TRAIN, palette.TEST]))
    return marks


def robustness_charts(found, label: str) -> tuple[alt.Chart, alt.Chart]:
    """The drawn class's probability against sideways shift and against turn, one line per network, told apart
    by colour and point shape (found: a poke.Robustness); 300 high, so Streamlit leaves the plot about 180 px."""
    names = list(found.by_shift)
    colour = alt.Color("network:N", title=None, scale=alt.Scale(domain=names, range=list(ROBUST_COLOURS[:len(names)])))
    shape = alt.Shape("network:N", title=None, scale=alt.Scale(domain=names, range=list(ROBUST_SHAPES[:len(names)])))
    y = alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title=None)
    shifts = pd.DataFrame([{"network": n, "shift": s, "probability": float(p)} for n in names
                           for s, p in zip(found.shifts, found.by_shift[n])])
    turns = pd.DataFrame([{"network": n, "turn": a, "probability": float(p)} for n in names
                          for a, p in zip(found.angles, found.by_angle[n])])
    return (alt.Chart(shifts).mark_line(point=True).encode(
                x=alt.X("shift:Q", title=_("moved sideways (pixels)")), y=y, color=colour, shape=shape).properties(
                **titled(_("Moved sideways: the probability of {label}").format(label=label), 300)),
            alt.Chart(turns).mark_line(point=True).encode(
                x=alt.X("turn:Q", title=_("turned (degrees)")), y=y, color=colour, shape=shape).properties(
                **titled(_("Turned: the probability of {label}").format(label=label), 300)))


def curve_chart(frame: pd.DataFrame, metric: str, epochs: int | None = None, by_run: bool = False,
                best_epoch: int | None = None) -> alt.Chart:
    """Loss or accuracy per epoch, train and test told apart by dash and point shape (and by colour, or runs by
    colour and a name at each line's end); best_epoch: a marker where early stopping kept the weights."""
    parts = curve_data(frame, metric, by_run, best_epoch)
    return _curve_chart(parts.__getitem__, metric, _x_end(parts["lines"], epochs), by_run, "kept" in parts)


def curve_data(frame: pd.DataFrame, metric: str, by_run: bool = False, best_epoch: int | None = None) -> dict:
    """What a curve chart draws, by role: "lines" (epoch, data, metric, value[, run]), "ends" (each run's last test
    point, by_run only), "kept" (the epoch early stopping kept, when there is one)."""
    lines = frame[frame["metric"] == metric].reset_index(drop=True)
    parts = {"lines": lines}
    if by_run:
        parts["ends"] = lines[lines["data"] == "test"].sort_values("epoch").groupby("run", sort=False).tail(1)
    if best_epoch:
        parts["kept"] = pd.DataFrame({"epoch": [best_epoch],
                                      "label": [_("kept: epoch {epoch}").format(epoch=best_epoch)]})
    return parts


def _x_end(lines: pd.DataFrame, epochs: int | None) -> int:
    return max(epochs or 1, int(lines["epoch"].max()) if len(lines) else 1)


def _curve_chart(data, metric: str, x_end: int, by_run: bool, kept: bool) -> alt.Chart:
    """The curve chart whose layers take their data from data(role): frames, or alt.NamedData for a template."""
    x_scale = alt.Scale(domain=[1, x_end])
    x = alt.X("epoch:Q", title=_("epoch"), scale=x_scale, axis=alt.Axis(tickMinStep=1, format="d"))
    y_title = {"loss": _("loss"), "accuracy": _("accuracy")}[metric]
    y = alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False))
    marks = train_test_marks(colour=not by_run)
    if by_run:
        marks["color"] = alt.Color("run:N", title=_("run"), scale=alt.Scale(scheme="category10"))
    chart = alt.Chart(data("lines")).mark_line(point=True).encode(
        x=x, y=y, tooltip=[alt.Tooltip("epoch:Q", title=_("epoch")), alt.Tooltip("data:N", title=_("data")),
                           alt.Tooltip("value:Q", title=y_title, format=".4f")]
        + ([alt.Tooltip("run:N", title=_("run"))] if by_run else []), **marks)
    if by_run:  # each run named at the end of its test line: colour is not the only key
        chart = chart + alt.Chart(data("ends")).mark_text(align="right", dx=-4, dy=-10, fontWeight="bold").encode(
            x=x, y=y, text="run:N", color=marks["color"])
    if kept:
        rule = alt.Chart(data("kept")).mark_rule(color=palette.KEPT_EPOCH, strokeWidth=2, strokeDash=[6, 3]).encode(
            x=x)  # the curves' x (a bare epoch field made the shared axis start at 0)
        note = alt.Chart(data("kept")).mark_text(align="left", dx=4, dy=-6, color=palette.KEPT_EPOCH,
                                                 fontWeight="bold").encode(x=x, y=alt.value(0), text="label:N")
        chart = chart + rule + note
    return chart.properties(**titled({"loss": _("Loss per epoch"), "accuracy": _("Accuracy per epoch")}[metric], 260,
                                     train_test_key()))


def curves(where, metric: str, frame_of, epochs: int | None = None, by_run: bool = False,
           best_epoch: int | None = None, key: tuple | None = None) -> None:
    """curve_chart() of frame_of() drawn, with its numbers (curve_spec()); key: what names frame_of()'s data for
    good (a finished run's), to keep the result for everyone."""
    def made():
        return curve_spec(frame_of(), metric, epochs, by_run, best_epoch)
    spec, table, title = (_kept((i18n.current(), "curves", metric, epochs, by_run, best_epoch, key), made) if key
                          else made())
    where.vega_lite_chart(spec=spec, width="stretch")
    numbers(where, table, title)


def curve_spec(frame: pd.DataFrame, metric: str, epochs: int | None = None, by_run: bool = False,
               best_epoch: int | None = None) -> tuple[dict, pa.Table | None, str]:
    """curve_chart()'s spec with its data in Arrow, its numbers' table and its title. The spec is built once per
    shape for the server and only the data is put in (Altair building the charts anew was most of the cost of a
    training's page reruns)."""
    parts = curve_data(frame, metric, by_run, best_epoch)
    spec, title = _curve_template(i18n.current(), metric, _x_end(parts["lines"], epochs), by_run, "kept" in parts)
    datasets = {role: dataframe_util.convert_anything_to_arrow_bytes(part) for role, part in parts.items()}
    return {**spec, "datasets": datasets}, numbers_table(curve_numbers(parts["lines"], by_run), False), title


def curve_numbers(lines: pd.DataFrame, by_run: bool = False) -> pd.DataFrame:
    """A curve chart's numbers, one row per epoch: epoch, then train and test (each run's, "Run 2 test", when the
    chart overlays runs), so that an overlay of long runs stays one short table; headed in the page's language."""
    if not len(lines):
        return pd.DataFrame(columns=[_("epoch")])
    columns = ["run", "data"] if by_run else ["data"]
    wide = lines.pivot_table(index="epoch", columns=columns, values="value", aggfunc="first", sort=False)
    data = {"train": _("train"), "test": _("test")}
    wide.columns = [f"{name[0]} {data[name[1]]}" if by_run else data[name] for name in wide.columns]
    return wide.sort_index().rename_axis(_("epoch")).reset_index()


@st.cache_resource(max_entries=256, show_spinner=False)
def _curve_template(language: str, metric: str, x_end: int, by_run: bool, kept: bool) -> tuple[dict, str]:
    spec = _curve_chart(alt.NamedData, metric, x_end, by_run, kept).to_dict(validate=False)
    return spec, chart_title(spec)


@st.cache_resource(max_entries=512, show_spinner=False)
def _kept(key: tuple, _make):
    """_make()'s chart, once per key for the whole server (read-only: key names all that the chart shows)."""
    return _make()


@alt.theme.register("mnist_live", enable=True)
def _chart_theme():
    """Every chart writes the numbers of its axes, legends and tooltips the page's way (0,2 and 50 % in German):
    Altair asks for this as it turns a chart into a spec, in the page run's language."""
    return {"config": {"locale": {"number": i18n.chart_numbers()}}}


def arrow_spec(chart: alt.TopLevelMixin) -> dict:
    """The chart as a Vega-Lite spec whose datasets are Arrow already (as st.altair_chart sends them): a cached
    spec is then drawn again without converting its data each time (most of a board tick's cost). Altair's schema
    check is skipped (a third of the conversion's time): the charts are the app's own, and the tests draw each."""
    return _in_arrow(chart.to_dict(validate=False))


def _in_arrow(spec: dict) -> dict:
    """spec with its datasets converted to Arrow (as st.altair_chart sends them)."""
    spec["datasets"] = {name: dataframe_util.convert_anything_to_arrow_bytes(pd.DataFrame(values))
                        for name, values in spec.get("datasets", {}).items()}
    return spec


def chart_title(spec: dict) -> str:
    """A Vega-Lite spec's title as plain text."""
    title = spec.get("title") or next((layer.get("title") for layer in spec.get("layer", []) if layer.get("title")),
                                      None)
    title = title.get("text") if isinstance(title, dict) else title
    return (" ".join(title) if isinstance(title, list) else title) or _("this chart")


def _chart_spec(chart: alt.TopLevelMixin) -> tuple[dict, pa.Table | None, str]:
    spec = chart.to_dict(validate=False)  # as in arrow_spec
    frames = [pd.DataFrame(values) for values in spec.get("datasets", {}).values()]
    table = max(frames, key=len) if frames else None  # the chart's data; smaller ones are its marks (a rule...)
    return _in_arrow(spec), numbers_table(table), chart_title(spec)


def chart(where, key: tuple, build) -> None:
    """Draw the Altair chart that build() makes, built once per key for the whole server (Altair's validation and
    the data's conversion were three quarters of a Train page's cost): key must name all that the chart shows.
    Its numbers follow it as a table (numbers())."""
    spec, table, title = _kept((i18n.current(), "chart", *key), lambda: _chart_spec(build()))
    where.vega_lite_chart(spec=spec, width="stretch")
    numbers(where, table, title)


def numbers(where, table: pd.DataFrame | pa.Table | None, title: str) -> None:
    """A chart's text alternative: its data as a table behind an expander under it (a screen reader reads it out;
    anyone gets the exact figures). table: a frame, or one that numbers_table() prepared once for a cached chart."""
    if isinstance(table, pd.DataFrame):
        table = numbers_table(table)
    if table is None:
        return
    with where.expander(_("The numbers: {title}").format(title=title), icon=":material/table:"):
        st.table(table)


def numbers_table(frame: pd.DataFrame | None, headers_in_english: bool = True) -> pa.Table | None:
    """A chart's data as its numbers show it (the first NUMBERS_ROWS rows, 4 decimals, the first column as the
    index), already in Arrow: prepared with a cached chart, each viewer's rerun only sends it. In another language
    its headers are the catalog's (a chart's fields are named as its axes are titled) and its numbers are written
    that language's way (a table's own number format is English only); headers_in_english=False: they are
    the language's already."""
    if frame is None or not len(frame):
        return None
    shown = frame.head(NUMBERS_ROWS).copy()
    english = i18n.current() == i18n.DEFAULT
    for column in shown.select_dtypes("float").columns:
        shown[column] = shown[column].round(4) if english else [
            "–" if pd.isna(v) else i18n.number(v, 4) for v in shown[column]]
    if headers_in_english:
        shown.columns = [_(str(column)) for column in shown.columns]  # a field is named as its axis is titled
    return dataframe_util.convert_pandas_df_to_arrow_table(shown.set_index(shown.columns[0]))


def _freeze_import_time_objects() -> None:
    """Python's full collections walk every long-lived object (about 65 ms with these imports, and Streamlit ran
    one after every rerun until .streamlit/config.toml turned that off); freezing the objects made by the imports,
    once, takes them out of their reach."""
    try:
        import streamlit_drawable_canvas  # noqa: F401  (imported now so that its objects are frozen too)
    except Exception:  # It refuses to import outside `streamlit run` and AppTest; nothing to freeze then.
        pass
    gc.freeze()


_freeze_import_time_objects()


if __name__ == "__main__":  # run as a page (see through_the_app): this module is never one
    through_the_app()
