"""The mend that delivers a run whole before the next starts, on Streamlit's own request queue and a real event loop
(the race it closes needs a busy server: the 100-student protocol lesson measures it, see the README)."""
import asyncio
import time
from types import SimpleNamespace

from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequests

import protocol
from pages import streamlit_mends


def _session(loop, requests):
    return SimpleNamespace(_scriptrunner=SimpleNamespace(_requests=requests), _event_loop=loop)


def test_a_request_waits_for_the_stopped_runners_last_messages_and_goes_at_once_otherwise():
    async def scenario():
        loop, calls = asyncio.get_running_loop(), []
        running = ScriptRequests()
        running.request_rerun(RerunData())
        running.on_scriptrunner_ready()  # a run in progress
        session = _session(loop, running)
        streamlit_mends.after_the_run_is_delivered(session, lambda: calls.append("running"), time.monotonic())
        assert calls == ["running"]  # Streamlit queues it with the run in progress, as before

        done = ScriptRequests()
        done.request_rerun(RerunData())
        done.on_scriptrunner_ready()
        done.on_scriptrunner_ready()  # its script ended, nothing more asked: stopped
        session = _session(loop, done)
        streamlit_mends.after_the_run_is_delivered(session, lambda: calls.append(("rerun", session._scriptrunner)),
                                                   time.monotonic())
        assert calls == ["running"]  # not yet: the old run's messages wait on the loop
        loop.call_soon(calls.append, "last messages")  # what the stopped runner had handed to the loop
        loop.call_soon(setattr, session, "_scriptrunner", None)  # its SHUTDOWN event lets it go
        await asyncio.sleep(0.1)
        assert calls == ["running", "last messages", ("rerun", None)]

        stuck = _session(loop, done)  # a runner whose SHUTDOWN never comes: Streamlit's own way, after the limit
        streamlit_mends.after_the_run_is_delivered(stuck, lambda: calls.append("late"),
                                                   time.monotonic() - streamlit_mends.RUN_DELIVERY_MAX_S + 0.05)
        await asyncio.sleep(0.2)
        assert calls[-1] == "late"

        fresh = SimpleNamespace(_scriptrunner=None, _event_loop=loop)  # a session's first request
        streamlit_mends.after_the_run_is_delivered(fresh, lambda: calls.append("first"), time.monotonic())
        assert calls[-1] == "first"
    protocol.run(scenario())  # in a thread: under pytest-playwright this one may run an event loop already

