"""Mends for Streamlit 1.67 behaviours that lost a click or an answer: each guarded (it does nothing when the
internals it relies on change) and each with a test that fails without it (tests/test_protocol_races.py). They
belong upstream."""
import functools
import time
from contextlib import contextmanager

import streamlit as st


def keep_download_answers() -> None:
    """app.py's call: a file made on a download's click (the notebook, the model) reaches the browser even when a
    run starts as it is ready. Streamlit sends it as an answer apart from the runs, and a run's start clears the
    session's unsent messages but those of the runs' lifecycle: the answer was dropped and the browser kept the
    button off and spinning for three minutes (CI, Download notebook). Process-wide and once."""
    from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
    if getattr(ForwardMsgQueue.clear, "keeps_download_answers", False):
        return
    clear = ForwardMsgQueue.clear

    @functools.wraps(clear)
    def clear_keeping_answers(self, retain_lifecycle_msgs: bool = False, *args, **kwargs) -> None:
        answers = [m for m in self._queue if m.WhichOneof("type") == "backend_operation_response"]
        clear(self, retain_lifecycle_msgs, *args, **kwargs)
        if not retain_lifecycle_msgs:  # a flush, which has taken them to send
            return
        kept = {id(m) for m in self._queue}
        self._queue.extend(m for m in answers if id(m) not in kept)
    clear_keeping_answers.keeps_download_answers = True
    ForwardMsgQueue.clear = clear_keeping_answers


DOWNLOAD_GRACE_S = 30.0  # how long a download's file maker outlives the run that drew its button


def keep_downloads_through_a_rerun() -> None:
    """app.py's call: a click on a download whose file is made on the click (the notebook, the model) gets its file
    also when another run of the page ends first. Each run gives the button a new file id and, at its end, Streamlit
    forgets the makers no button shows any more: the click, which still named the old id, failed ("Failed to
    generate file for download", and a traceback in the log). Streamlit keeps a plain download's file one cleanup
    longer for this reason; a maker now stays DOWNLOAD_GRACE_S after its button was redrawn. Process-wide and once."""
    from streamlit.runtime.media_file_manager import MediaFileManager
    forget = MediaFileManager._remove_orphaned_deferred_callables
    if getattr(forget, "keeps_downloads_through_a_rerun", False):
        return

    @functools.wraps(forget)
    def forget_after_grace(self) -> None:
        try:
            shown = {file_id for files in self._files_by_session_and_coord.values() for file_id in files.values()}
            makers, drop = self._deferred_callables, self._drop_deferred_id
        except AttributeError:  # Streamlit's internals changed: its own cleanup
            forget(self)
            return
        since = self.__dict__.setdefault("_no_button_since", {})  # file id -> when no button showed it any more
        now = time.monotonic()
        for file_id in list(since):
            if file_id in shown or file_id not in makers:
                del since[file_id]
        for file_id in [f for f in makers if f not in shown]:
            if now - since.setdefault(file_id, now) >= DOWNLOAD_GRACE_S:
                del since[file_id]
                drop(file_id)
    forget_after_grace.keeps_downloads_through_a_rerun = True
    MediaFileManager._remove_orphaned_deferred_callables = forget_after_grace


def install() -> None:
    """app.py's first call, every run (each mend is installed once per process and then returns at once)."""
    start_in_the_main_area()
    deliver_each_run_before_the_next()
    rerun_whole_for_fragments_never_drawn()
    keep_download_answers()
    keep_downloads_through_a_rerun()
    apply_clicks_before_yielding()
    note_whether_the_page_list_was_hidden()


def start_in_the_main_area() -> None:
    """Every whole run (install's call): the page writes in the main area. A fragment's own rerun (a ticking status
    line, in the sidebar) points the script thread's stack of containers at the fragment's place and leaves it
    there; a whole rerun asked for as that run ended ran next on the same thread, and the whole page went into the
    fragment's place (walker seed 45 of 4 December: Explore's tabs in the sidebar, beside the old ones in the main
    area). Streamlit resets the stack only when a run is cut short."""
    try:
        from streamlit.delta_generator_singletons import context_dg_stack, get_default_dg_stack_value
        context_dg_stack.set(get_default_dg_stack_value())
    except (ImportError, AttributeError, RuntimeError):  # Streamlit's internals changed
        pass


RUN_DELIVERY_WAIT_S = 0.005  # how often a request asks again while the run before it is still being delivered
RUN_DELIVERY_MAX_S = 2.0  # then Streamlit's own way (a loop this far behind has bigger problems)


def deliver_each_run_before_the_next() -> None:
    """A fragment's rerun asked for just as a run ends waits until that run's last messages are on their way. A
    script runner hands its messages to the server's event loop one by one and then stops; a fragment's request (its
    timer's tick, a stroke) that the loop took in between found the runner stopped, started a new one for the
    fragment alone, and the loop then dropped the rest of the old run's messages as coming from a replaced runner:
    the end of the page, its fragments' timers and its script_finished. The page stopped updating: 2 of 100 protocol
    students on a busy server waited 11 minutes for a training that had finished. A whole rerun in that moment draws
    the page anew, so it goes at once, as before (waiting made the sidebar's panel jump in a Cancel's rerun under
    load, a cause not yet found). Process-wide and once."""
    from streamlit.runtime.app_session import AppSession
    if getattr(AppSession.request_rerun, "delivers_each_run_first", False):
        return
    request = AppSession.request_rerun

    @functools.wraps(request)
    def request_rerun(self, client_state=None, *args, **kwargs) -> None:
        if not getattr(client_state, "fragment_id", ""):
            request(self, client_state, *args, **kwargs)
            return
        after_the_run_is_delivered(self, lambda: request(self, client_state, *args, **kwargs), time.monotonic())
    request_rerun.delivers_each_run_first = True
    AppSession.request_rerun = request_rerun


def after_the_run_is_delivered(session, go, since: float) -> None:
    """Call go() on session's event loop once its stopped script runner's messages are all handled (the runner's
    last event, SHUTDOWN, lets it go), or at once when no runner is stopping, or after RUN_DELIVERY_MAX_S."""
    runner = getattr(session, "_scriptrunner", None)
    requests = getattr(runner, "_requests", None)
    state = getattr(requests, "_state", None)
    loop = getattr(session, "_event_loop", None)
    if (getattr(state, "name", "") != "STOP" or loop is None
            or time.monotonic() - since > RUN_DELIVERY_MAX_S):
        go()
        return
    loop.call_soon_threadsafe(loop.call_later, RUN_DELIVERY_WAIT_S, after_the_run_is_delivered, session, go, since)


def rerun_whole_for_fragments_never_drawn() -> None:
    """A widget change sent for a fragment this session has never drawn reruns the whole page with it. Such a
    change comes from a page another session drew: a tab reconnecting after a server restart sends a stroke made
    as it comes back as a rerun of the canvas's fragment, before the new session's first run has drawn it, and
    Streamlit dropped the request whole, the drawing with it (the stroke on screen never got an answer: walker
    seed 39). A fragment the session did draw and has since dropped (the page changed), and a fragment's own timer,
    are left to Streamlit, which ignores them. Process-wide and once."""
    from streamlit.proto.ClientState_pb2 import ClientState
    from streamlit.runtime.app_session import AppSession
    from streamlit.runtime.fragment import MemoryFragmentStorage
    if getattr(AppSession.request_rerun, "reruns_unknown_fragments_whole", False):
        return
    request, register = AppSession.request_rerun, MemoryFragmentStorage.register

    @functools.wraps(register)
    def register_remembering(self, key, *args, **kwargs) -> None:
        register(self, key, *args, **kwargs)
        self.__dict__.setdefault("_ever_drawn", set()).add(key)

    @functools.wraps(request)
    def request_rerun(self, client_state=None, *args, **kwargs) -> None:
        fragment_id = getattr(client_state, "fragment_id", "")
        storage = getattr(self, "_fragment_storage", None)
        if (fragment_id and not client_state.is_auto_rerun and isinstance(storage, MemoryFragmentStorage)
                and not storage.contains(fragment_id) and fragment_id not in storage.__dict__.get("_ever_drawn", ())):
            whole = ClientState()
            whole.CopyFrom(client_state)
            whole.fragment_id = ""
            client_state = whole
        request(self, client_state, *args, **kwargs)
    request_rerun.reruns_unknown_fragments_whole = True
    MemoryFragmentStorage.register = register_remembering
    AppSession.request_rerun = request_rerun


def apply_clicks_before_yielding() -> None:
    """app.py's call: a run takes in the click that started it before a newer request can cut it short. Streamlit
    looks for one just before it applies the run's widget values and calls their callbacks, and the newer request
    replaces the run's without its click: Start over's Yes, pressed as another rerun came (the cookie's, a second
    click), did nothing. Now the newer request cuts in right after the callbacks. Process-wide and once; only with
    runner.fastReruns off (.streamlit/config.toml), where no second script runner can be changing the state."""
    from streamlit.runtime.state.safe_session_state import SafeSessionState
    if getattr(SafeSessionState.on_script_will_rerun, "applies_clicks_first", False) or st.get_option(
            "runner.fastReruns"):
        return
    apply = SafeSessionState.on_script_will_rerun

    @functools.wraps(apply)
    def apply_then_yield(self, fresh_widget_states=None, *args, **kwargs) -> None:
        look_for_newer = self._yield_callback
        object.__setattr__(self, "_yield_callback", lambda: None)  # also for st calls in the callbacks
        try:
            apply(self, fresh_widget_states, *args, **kwargs)
            if _clicks_without_a_callback(self, fresh_widget_states):  # they act in the body: see whole_run
                _hold_newer_requests()
        finally:
            object.__setattr__(self, "_yield_callback", look_for_newer)
    apply_then_yield.applies_clicks_first = True
    SafeSessionState.on_script_will_rerun = apply_then_yield


@contextmanager
def uninterrupted():
    """Within, a rerun the browser asks for (another click, a component's report) waits until the block is done.
    Streamlit looks for one at every st call, also in a button's callback, and cuts the run short there: a callback
    cut short at its first line lost the press (Start over's Yes did nothing: walker seeds 1 and 44). Needs
    runner.fastReruns off (.streamlit/config.toml): with it on, a new request starts a second script runner at once
    rather than waiting for this one."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    requests = getattr(get_script_run_ctx(), "script_requests", None)
    if requests is None or not hasattr(requests, "on_scriptrunner_yield"):
        yield
        return
    if "on_scriptrunner_yield" in vars(requests):  # within another such block
        yield
        return
    requests.on_scriptrunner_yield = lambda: None  # this object's own, over its class's method, until the end
    try:
        yield
    finally:
        del requests.on_scriptrunner_yield


def _clicks_without_a_callback(safe_state, widget_states) -> bool:
    """Whether the run's message presses a button this session has not drawn (no callback): a new session's."""
    try:
        drawn = safe_state._state._new_widget_state.widget_metadata
        return any(w.WhichOneof("value") == "trigger_value" and w.trigger_value and w.id not in drawn
                   for w in (widget_states.widgets if widget_states is not None else ()))
    except AttributeError:  # Streamlit's internals changed: no hold
        return False


def note_whether_the_page_list_was_hidden() -> None:
    """Each session notes whether its last run's first message (new_session) hid the sidebar's page list; those that
    exist as this is installed are taken to have hidden it (see page_list_hidden). Process-wide and once."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.app_session import AppSession
    if getattr(AppSession._create_new_session_message, "notes_hidden_page_list", False):
        return
    create = AppSession._create_new_session_message

    @functools.wraps(create)
    def create_noting(self, *args, **kwargs):
        msg = create(self, *args, **kwargs)
        self._page_list_hidden = msg.new_session.config.hide_sidebar_nav
        return msg
    create_noting.notes_hidden_page_list = True
    AppSession._create_new_session_message = create_noting
    try:
        for info in Runtime.instance()._session_mgr.list_sessions() if Runtime.exists() else ():
            info.session.__dict__.setdefault("_page_list_hidden", True)
    except AttributeError:  # Streamlit's internals changed
        pass


PAGE_LIST_RERUN = "page_list_rerun"  # session state: the session reran once to show its page list


def page_list_hidden() -> bool:
    """Whether the browser may have been told at this run's start to hide the sidebar's page list; at most once per
    session. The browser reads that switch from each run's first message only, and a fresh server's first runs
    (several at once when a class's tabs come back after a restart) start before app.py turns the list on
    (common.use_app_navigation): a tab that had no second run kept no page list (walker seed 93). app.py then reruns
    before it draws (rerunning at the end moved the whole sidebar down by the list's height under a click: walker
    seed 10) and after st.navigation (else the rerun forgets the page asked for: seed 13 landed on Home). Streamlit
    makes a run's first message on its event loop, not before the script starts: a session whose message is still
    to come now gets it with the list on. False outside a server (AppTest)."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not Runtime.exists() or st.session_state.get(PAGE_LIST_RERUN):
        return False
    try:
        info = Runtime.instance()._session_mgr.get_session_info(ctx.session_id)
    except AttributeError:  # Streamlit's internals changed
        return False
    hidden = info is not None and info.session.__dict__.get("_page_list_hidden", False)
    if hidden:
        st.session_state[PAGE_LIST_RERUN] = True
    return hidden


def _requests():
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    requests = getattr(get_script_run_ctx(), "script_requests", None)
    return requests if hasattr(requests, "on_scriptrunner_yield") else None


def _hold_newer_requests() -> None:
    """A newer request waits until whole_run's end (this script runner's object, not its class)."""
    requests = _requests()
    if requests is not None and "on_scriptrunner_yield" not in vars(requests):
        requests.on_scriptrunner_yield = lambda: None


@contextmanager
def whole_run():
    """app.py's run: one that a click on a button the session has not drawn started (apply_clicks_before_yielding
    holds newer requests then) is not cut short before its end. A new session has no callbacks, so a click that is
    its first message (a tab that reconnected after a restart) acts where the page draws its button; the tab's own
    rerun for the reconnection, 5-60 ms later, cut that run short and lost the click (walker seed 10: Train started
    no training). Other runs are cut short as before (a reconnected tab's plain rerun must be: its next one tells
    the new session which canvas the tab shows)."""
    try:
        yield
    finally:
        requests = _requests()
        if requests is not None and "on_scriptrunner_yield" in vars(requests):
            del requests.on_scriptrunner_yield


def held_widget_keys() -> set[str]:
    """The keys of the widget values this run's message carries, also of widgets this session never drew (a tab
    that reconnected after a restart sends what its old session's page showed). Streamlit has no public call for
    these: empty if its internals change."""
    try:
        from streamlit.runtime.state.common import user_key_from_element_id
        from streamlit.runtime.state.session_state_proxy import get_session_state
        ids = list(get_session_state()._state._new_widget_state.states)
    except (ImportError, AttributeError):
        return set()
    return {key for key in map(user_key_from_element_id, ids) if key}
