"""The protocol load client in its short mode: 20 students who speak Streamlit's websocket protocol (no browser)
against a fresh server, with a teacher's board open. Correctness only: every student's run finishes and reaches the
board, every prediction is the digit the student's own model gives for the very image sent (before and after a
poke), and the server logs no error. Its times are printed, never asserted (python tests/loadtest.py --protocol
--students N measures them)."""
import json

import protocol_load


def test_twenty_protocol_students_train_reach_the_board_and_read_their_digits_right():
    # Quicker students than the measured lesson's (0.5-2.5 s pauses, 5 s on the board): the same steps, closer
    # together, and the suite's time goes to the server's work rather than to waiting.
    figures = protocol_load.run(students=20, slots=1, seed=1, time_limit_s=600, think_s=(0.2, 1.0), watch_s=2.0)
    print(json.dumps(figures, indent=1))
    assert figures["ok"], json.dumps(figures, indent=1)
    assert figures["runs_without_finish_then_a_fragment"] == 0, figures  # a run's end lost: its page stopped
    assert figures["interactions"] >= 20 * 12  # open, 2 pages, 2 boxes, Join, 2 knobs, Train, 3 drawings, a poke
