"""A browser tab without a browser: one Streamlit session driven over its websocket with the protobufs that ship
with the streamlit package (BackMsg out, ForwardMsg in), cheap enough for hundreds of students in one process.

It does what the browser's frontend does and no more: sends reruns with the widget states it holds, keeps the page's
elements by delta path, runs the fragments' auto-rerun timers (and drops them when a full run starts or the page
changes), and times each request until the run that answers it has finished.
"""
from __future__ import annotations

import asyncio
import collections
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

DONE = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)
ANSWER_TIMEOUT_S = 120  # a request that no run answers within this is a failure (a browser would show it running)


def run(coroutine):
    """asyncio.run(coroutine) in a thread of its own: the caller's thread may already run an event loop (under
    pytest-playwright's fixtures the whole suite does), where asyncio.run refuses to start."""
    import threading
    out = {}

    def target():
        try:
            out["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # handed to the caller
            out["error"] = exc
    thread = threading.Thread(target=target, name="protocol-clients")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


class ProtocolError(Exception):
    """The server answered with something a browser would show as broken (an exception, a closed socket)."""


@dataclass
class Request:
    """One rerun sent: a user's interaction or a fragment's timer tick, answered by the first run of the same scope
    (the whole page, or that fragment) that starts after it and finishes."""
    scope: str  # "" for the whole page, else the fragment id
    what: str
    sent: float
    started: bool = False
    run_id: str = ""
    absorbed: bool = False  # a fragment's tick that a full run answered (it had not started when that run began)
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Session:
    """One simulated tab. `await Session.open(url, path)` connects and waits for the first run."""

    def __init__(self, url: str, cookies: dict[str, str] | None = None, locale: str = "en-US"):
        self.base = url.rstrip("/")
        self.cookies = dict(cookies or {})
        self.locale = locale
        self.elements: dict[tuple, object] = {}  # delta path -> Element proto
        self.blocks: dict[tuple, str] = {}  # delta path -> the kind of block there (vertical, expandable, ...)
        self.fragment_of: dict[tuple, str] = {}  # delta path (element or block) -> its fragment ("" outside any)
        self.run_of: dict[tuple, str] = {}  # delta path (element or block) -> the script run that drew it last
        self.values: dict[str, WidgetState] = {}  # widget id -> the value this tab holds (sent with every rerun)
        self.pages: dict[str, str] = {}  # url path ("" for the default page) -> page script hash
        self.navigations: list[tuple[int, list[str]]] = []  # every navigation message: (position, page names)
        self.nav_hidden: list[bool] = []  # every whole run's new_session: whether it hid the sidebar's page list
        self.drawn_without_page_list = 0  # elements drawn by whole runs that hid it (the sidebar moved after them)
        self.page_hash = ""
        self.path = ""
        self.query = ""
        self.timings: list[tuple[str, float]] = []  # (what, seconds from send to the answering run's end)
        self.polls: list[float] = []  # the same for the fragments' timer ticks that a run of the fragment answered
        self.polls_absorbed = 0  # ticks answered by a full run instead (their fragment was redrawn by it)
        self.errors: list[str] = []
        self._pending: list[Request] = []
        self._timers: dict[str, asyncio.Task] = {}
        self._runs: dict[str, set] = {}  # script run id -> its scopes: {""} for the whole page, else fragment ids
        self._current = ""  # the script run whose deltas arrive now (a session runs one at a time)
        self._running = ""  # the full run whose page is half drawn (until its script_finished arrives)
        self.lifecycle = collections.deque(maxlen=12)  # (time, "start"/"end", run id, scope or status)
        self.version = 0  # counts the page's changes: a watcher reads the page again only when it moved
        self.unfinished_runs = 0  # full runs the server never sent a script_finished for
        self.stalled_runs = 0  # of them, those a fragment run followed: the page's end and timers were lost
        self._changed = asyncio.Event()
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._closing = False
        self.bytes_in = 0
        self.session_id = ""
        self._operations: dict[str, asyncio.Future] = {}  # backend operation request id -> its response

    @classmethod
    async def open(cls, url: str, path: str = "", query: str = "", **kwargs) -> "Session":
        self = cls(url, **kwargs)
        await self.connect(path, query)
        return self

    async def connect(self, path: str = "", query: str = "", held: list[WidgetState] = ()) -> float:
        """Open the websocket (a page load of /path?query) and wait for the first run; returns its seconds.
        held: widget states the first rerun carries (a tab that reconnected after a restart sends what it shows)."""
        await self._open_socket(path, query)
        return await self._send("open /" + self.path, {h.id: h for h in held}, page_name=self.path)

    async def reconnect_sending(self, path: str, first: list[WidgetState], then: list[WidgetState],
                                after_s: float) -> None:
        """A tab that reconnects after a restart: its first rerun carries `first` (a click made as it came back),
        and `after_s` later, without waiting for that run, another carries `then` (the page's own rerun for the
        reconnection). Waits for both answers."""
        await self._open_socket(path, "")
        clicked = asyncio.create_task(self._send("open /" + self.path, {h.id: h for h in first}, page_name=self.path))
        await asyncio.sleep(after_s)
        await self._send("reconnected", {h.id: h for h in then}, page_name=self.path)
        await clicked

    async def _open_socket(self, path: str, query: str) -> None:
        parts = urlsplit(self.base)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        self._ws = await websockets.connect(f"ws://{parts.netloc}/_stcore/stream", subprotocols=["streamlit"],
                                            additional_headers=headers, max_size=64 * 2**20, open_timeout=60,
                                            ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        self.path, self.query = path.strip("/"), query.lstrip("?")

    async def close(self) -> None:
        self._closing = True
        for task in self._timers.values():
            task.cancel()
        self._timers.clear()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()

    # ------------------------------------------------------------ what the user does

    async def goto(self, page: str) -> float:
        """Click a page in the sidebar (the browser drops the query string)."""
        self._stop_timers()
        self.path, self.query = page, ""
        self.page_hash = self.pages[page]
        return await self._send(f"goto {page}")

    async def click(self, label: str) -> float:
        path, widget = self._find("button", label)
        return await self._send(f"click {label}", {widget.id: WidgetState(id=widget.id, trigger_value=True)},
                                self.fragment_of.get(path, ""))

    async def download(self, label: str, timeout: float = 30) -> bytes:
        """Click a download button as the browser does: its rerun (unless it ignores reruns) and, for a file made on
        the click, a backend operation for its URL right after; the file's bytes."""
        import urllib.request
        import uuid
        path, button = self._find("download_button", label)
        rerun = None
        if not button.ignore_rerun:
            rerun = asyncio.create_task(self._send(f"download {label}", {button.id: WidgetState(
                id=button.id, trigger_value=True)}, self.fragment_of.get(path, "")))
            await asyncio.sleep(0)  # the rerun's message leaves first, as the browser's does
        url = button.url
        if button.deferred_file_id:
            msg = BackMsg()
            op = msg.backend_operation_request
            op.request_id, op.session_id = str(uuid.uuid4()), self.session_id
            op.deferred_file.file_id = button.deferred_file_id
            answer = self._operations[op.request_id] = asyncio.get_running_loop().create_future()
            await self._ws.send(msg.SerializeToString())
            try:
                response = await asyncio.wait_for(answer, timeout)
            except asyncio.TimeoutError:
                raise ProtocolError(f"no answer to the download of {label} within {timeout:.0f} s (the browser "
                                    "keeps the button off and spinning)") from None
            finally:
                self._operations.pop(op.request_id, None)
            if response.error_msg:
                raise ProtocolError(f"the download of {label} failed: {response.error_msg}")
            url = response.deferred_file.url
        if rerun is not None:
            await rerun

        def fetch() -> bytes:
            with urllib.request.urlopen(self.base + url, timeout=30) as r:
                return r.read()
        return await asyncio.to_thread(fetch)  # off the event loop: other sessions' messages and timers go on

    async def set_value(self, kind: str, label: str, what: str, **value) -> float:
        """Set a widget (kind as in the Element proto: "slider", "text_input"...) to a WidgetState value, for
        example double_array_value=..., string_value=...; the rerun goes where the browser sends it."""
        path, widget = self._find(kind, label)
        state = WidgetState(id=widget.id)
        for name, v in value.items():
            if name.endswith("_array_value"):
                getattr(state, name).data.extend(v)
            else:
                setattr(state, name, v)
        self.values[widget.id] = state
        if widget.form_id:  # in a form the browser keeps it until the form's button sends them all
            return 0.0
        return await self._send(what, scope=self.fragment_of.get(path, ""))

    def state_of(self, kind: str, label: str) -> WidgetState:
        """The value a browser holds for a widget as drawn (selectboxes and radios: the option's label)."""
        _, widget = self._find(kind, label)
        if widget.id in self.values:
            return self.values[widget.id]
        if kind in ("selectbox", "radio"):
            return WidgetState(id=widget.id, string_value=widget.options[widget.default])
        raise ProtocolError(f"no value known for the {kind} {label!r}")

    async def rerun_holding(self, states: list[WidgetState], what: str) -> float:
        """A rerun from a browser that still shows widgets the server has since replaced: their values travel
        with it."""
        return await self._send(what, {state.id: state for state in states})

    async def set_component(self, component: str, value: dict, what: str) -> float:
        """A components-v2 widget (the drawing canvas) reports its state as JSON."""
        path, element = next((p, e) for p, e in self.elements.items() if e.WhichOneof("type") == "bidi_component"
                             and component in e.bidi_component.component_name)
        state = WidgetState(id=element.bidi_component.id, json_value=json.dumps(value))
        self.values[state.id] = state
        return await self._send(what, scope=self.fragment_of.get(path, ""))

    # ------------------------------------------------------------ what the page shows

    def of_kind(self, kind: str) -> list:
        return [getattr(e, kind) for e in self.elements.values() if e.WhichOneof("type") == kind]

    def _find(self, kind: str, label: str):
        """(delta path, proto) of the widget of this kind and label (the last one drawn)."""
        found = [(p, getattr(e, kind)) for p, e in self.elements.items()
                 if e.WhichOneof("type") == kind and getattr(e, kind).label == label]
        if not found:
            raise ProtocolError(f"no {kind} {label!r} on /{self.path}: {self.labels()}")
        return found[-1]

    def has(self, kind: str, label: str) -> bool:
        return any(w.label == label for w in self.of_kind(kind))

    def metric(self, label: str) -> str | None:
        return next((m.body for m in self.of_kind("metric") if m.label == label), None)

    def texts(self) -> list[str]:
        """Every text, heading, markdown, alert and caption body on the page."""
        out = []
        for e in self.elements.values():
            kind = e.WhichOneof("type")
            if kind in ("markdown", "heading", "alert", "text"):
                out.append(getattr(e, kind).body)
            elif kind == "code":
                out.append(e.code.code_text)
            elif kind == "progress":
                out.append(e.progress.text)
        return out

    def labels(self) -> list[str]:
        return [getattr(e, e.WhichOneof("type")).label for e in self.elements.values()
                if hasattr(getattr(e, e.WhichOneof("type")), "label")][:40]

    def component_data(self, component: str) -> dict | None:
        """The JSON data the app passed to a components-v2 element (the workspace cookie's, say)."""
        for e in self.elements.values():
            if e.WhichOneof("type") == "bidi_component" and component in e.bidi_component.component_name:
                return json.loads(e.bidi_component.json) if e.bidi_component.json else None
        return None

    def dataframes(self) -> list:
        """The page's st.dataframe tables as pandas frames (Arrow IPC in the proto)."""
        import pyarrow as pa
        out = []
        for frame in self.of_kind("dataframe"):
            data = frame.arrow_data.data
            if data:
                out.append(pa.ipc.open_stream(data).read_all().to_pandas())
        return out

    async def until(self, predicate, timeout: float, what: str) -> float:
        """Wait (the page's timers keep ticking) until predicate(self) holds with no full run half drawn; returns
        the seconds waited."""
        t0 = time.perf_counter()
        while self._running or not predicate(self):
            self._changed.clear()
            try:  # woken by the next run's end (or a second later): no busy polling of the page
                await asyncio.wait_for(self._changed.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            if time.perf_counter() - t0 > timeout:
                raise ProtocolError(f"waited {timeout:.0f} s for {what} on /{self.path} (a full run half drawn: "
                                    f"{self._running or 'none'}; the last runs: {list(self.lifecycle)}): "
                                    f"{self.texts()[-8:]}")
            if self.errors:
                raise ProtocolError(self.errors[0])
        return time.perf_counter() - t0

    # ------------------------------------------------------------ the wire

    async def _send(self, what: str, triggers: dict | None = None, scope: str = "", page_name: str = "",
                    auto: bool = False) -> float:
        request = Request(scope, what, time.perf_counter())
        self._pending.append(request)
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_script_hash = self.page_hash
        state.page_name = page_name
        state.fragment_id = scope
        state.is_auto_rerun = auto
        state.widget_states.widgets.extend([*self._active_values(), *(triggers or {}).values()])
        info = state.context_info
        info.timezone, info.timezone_offset, info.locale = "UTC", 0, self.locale
        info.url = f"{self.base}/{self.path}" + (f"?{self.query}" if self.query else "")
        await self._ws.send(msg.SerializeToString())
        try:
            seconds = await asyncio.wait_for(asyncio.shield(request.done), ANSWER_TIMEOUT_S)
        except asyncio.TimeoutError:
            if request in self._pending:
                self._pending.remove(request)
            raise ProtocolError(f"no answer to {what} on /{self.path} within {ANSWER_TIMEOUT_S} s") from None
        if not auto:
            self.timings.append((what, seconds))
        elif request.absorbed:  # its wait measured the full run's timing, not the tick's: counted apart
            self.polls_absorbed += 1
            return None
        return seconds

    def _active_values(self) -> list[WidgetState]:
        on_page = {getattr(getattr(e, e.WhichOneof("type")), "id", None) for e in self.elements.values()}
        return [v for wid, v in self.values.items() if wid in on_page]

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                self.bytes_in += len(frame)
                msg = ForwardMsg()
                msg.ParseFromString(frame)
                self._handle(msg)
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code != 1000:
                self.errors.append(f"the server closed the websocket: {exc}")
        except asyncio.CancelledError:
            pass
        for request in self._pending:
            if not request.done.done():
                if self._closing:
                    request.done.cancel()
                else:
                    request.done.set_exception(ProtocolError(f"connection lost before {request.what} was answered"))

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        run = msg.metadata.run
        if kind == "backend_operation_response":
            answer = self._operations.get(msg.backend_operation_response.request_id)
            if answer is not None and not answer.done():
                answer.set_result(msg.backend_operation_response)
            return
        if kind == "new_session":
            if msg.new_session.initialize.session_id:
                self.session_id = msg.new_session.initialize.session_id
            scopes = set(run.fragment_ids) or {""}  # queued fragment reruns may run together
            self._runs[run.script_run_id] = scopes
            self.lifecycle.append((round(time.perf_counter(), 2), "start", run.script_run_id[:8],
                                   ",".join(f[:8] for f in scopes)))
            if self._running and self._running != run.script_run_id:
                # A full run with no script_finished: Streamlit dropped the last events of a script runner it
                # had replaced (AppSession ignores a sender that is not its current runner). A whole run after it
                # draws the page anew; a fragment's run does not, and the page's end and timers stayed lost (the
                # page stopped updating). streamlit_mends.deliver_each_run_before_the_next closes that second race;
                # both counted (the lesson test wants none of the second).
                self.unfinished_runs += 1
                self.stalled_runs += "" not in scopes
                self._finished(self._running, ForwardMsg.FINISHED_SUCCESSFULLY)
            self._current = run.script_run_id
            if "" in scopes:
                self._running = run.script_run_id
                self._stop_timers()
                self.page_hash = msg.new_session.page_script_hash
                for request in self._pending:  # a full run drops queued fragment runs and answers them itself
                    if request.scope and not request.started:
                        request.scope, request.absorbed = "", True
                self.pages.update({p.url_pathname: p.page_script_hash for p in msg.new_session.app_pages})
                self.nav_hidden.append(msg.new_session.config.hide_sidebar_nav)
            for request in self._pending:
                if request.scope in scopes and not request.started:
                    request.started, request.run_id = True, run.script_run_id
        elif kind == "navigation":  # the page the run resolved to (a deep link's first run may start elsewhere)
            self.navigations.append((msg.navigation.position, [p.page_name for p in msg.navigation.app_pages]))
            self.pages.update({p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages})
            if msg.navigation.page_script_hash:
                self.page_hash = msg.navigation.page_script_hash
            default = next((p for p in msg.navigation.app_pages if p.is_default), None)
            if default is not None:
                self.pages[""] = default.page_script_hash
        elif kind == "delta":
            path = tuple(msg.metadata.delta_path)
            if self.nav_hidden and self.nav_hidden[-1] and msg.delta.WhichOneof("type") == "new_element":
                self.drawn_without_page_list += 1
            what = msg.delta.WhichOneof("type")
            if what == "new_element":
                element = msg.delta.new_element
                if path in self.blocks:  # an element in a block's place ends the block and all in it
                    self._drop(path)
                self.elements[path] = element
                if element.WhichOneof("type") == "exception":
                    self.errors.append(f"exception on /{self.path}: {element.exception.message}")
            elif what == "add_block":
                # Like the browser: a block drawn again where one of its kind stands keeps the children there
                # (they go only when a finished run finds them stale); any other kind starts empty.
                block = msg.delta.add_block.WhichOneof("type") or ""
                if self.blocks.get(path) != block and (path in self.blocks or path in self.elements):
                    self._drop(path)
                self.blocks[path] = block
            if what in ("new_element", "add_block"):
                self.fragment_of[path] = msg.delta.fragment_id
                self.run_of[path] = self._current
        elif kind == "auto_rerun":
            self._start_timer(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fid in msg.stop_auto_rerun.fragment_ids:
                self._stop_timer(fid)
        elif kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif kind == "script_finished":
            self.lifecycle.append((round(time.perf_counter(), 2), "end", run.script_run_id[:8],
                                   int(msg.script_finished)))
            self._finished(run.script_run_id, msg.script_finished)

    def _finished(self, run_id: str, status) -> None:
        self.version += 1
        self._changed.set()
        scopes = self._runs.pop(run_id, {""})
        if run_id == self._running:
            self._running = ""
        if status in DONE:
            # What this run did not redraw is gone from the page (within its fragments, for a fragment run).
            stale = [p for p, r in self.run_of.items() if r != run_id and ("" in scopes or self.fragment_of.get(p)
                                                                           in scopes)]
            for p in stale:
                self._drop(p)
        now = time.perf_counter()
        for request in list(self._pending):
            if request.run_id == run_id and request.started and status in DONE:
                self._pending.remove(request)
                if not request.done.done():
                    request.done.set_result(now - request.sent)
            elif request.run_id == run_id and status not in DONE:
                request.started, request.run_id = False, ""  # cut short by a newer request: the next run answers

    def _drop(self, path: tuple) -> None:
        """Forget what stands at path and everything inside it."""
        n = len(path)
        for table in (self.elements, self.blocks, self.run_of, self.fragment_of):
            for p in [p for p in table if p[:n] == path]:
                del table[p]

    def _start_timer(self, fragment_id: str, interval: float) -> None:
        self._stop_timer(fragment_id)

        async def tick():  # like the browser's setInterval: it ticks whether or not the last one was answered
            while True:
                await asyncio.sleep(interval)
                asyncio.create_task(self._poll(fragment_id))
        self._timers[fragment_id] = asyncio.create_task(tick())

    async def _poll(self, fragment_id: str) -> None:
        try:
            seconds = await self._send("poll", scope=fragment_id, auto=True)
            if seconds is not None:
                self.polls.append(seconds)
        except (ProtocolError, websockets.ConnectionClosed, asyncio.CancelledError):
            pass  # unanswered (the tab is closing, or a full run took over): the browser does not mind either

    def _stop_timer(self, fragment_id: str) -> None:
        task = self._timers.pop(fragment_id, None)
        if task is not None:
            task.cancel()

    def _stop_timers(self) -> None:
        for fid in list(self._timers):
            self._stop_timer(fid)
