"""A shared database that cannot be opened is said in plain words on every page and in every error, and its
password never reaches a page, a message or a log."""
import pytest
from sqlalchemy import exc as sa_exc

import appserver
import protocol
from mnist_model import database
from mnist_model.store import Store, StoreError, StoreUnreachable
from protocol import Session

WRONG = "Wr0ngPassw0rd-not-the-real-one"


def _bad_urls(postgres) -> dict[str, tuple[str, str, type]]:
    """What an administrator gets wrong in MNIST_LIVE_DATABASE_URL -> (url, what the message says, its kind)."""
    good = postgres.database()
    return {"wrong password": (good.replace(postgres.password, WRONG), "refused the user name or password",
                               StoreError),
            "no such database": (good.rsplit("/", 1)[0] + "/no_such_db", "does not exist", StoreError),
            "nothing on the port": (good.replace(f":{postgres.port}/", ":1/"), "does not answer", StoreUnreachable),
            "unknown host": (good.replace("127.0.0.1", "db.invalid"), "is not known", StoreUnreachable)}


def test_a_database_that_cannot_be_opened_says_why_without_a_password(tmp_path, postgres):
    for case, (url, says, kind) in _bad_urls(postgres).items():
        with pytest.raises(StoreError) as caught:
            Store(tmp_path / case, url=url)
        message = str(caught.value)
        assert says in message and isinstance(caught.value, kind), (case, message)
        assert postgres.password not in message and WRONG not in message, (case, message)


def test_a_driver_error_that_quotes_the_password_is_said_without_it(postgres):
    database.Database(postgres.url())  # this process now knows the password
    raw = sa_exc.OperationalError("SELECT 1", {}, Exception(f"odd failure near password={postgres.password}"))
    message = str(database.readable(raw, "read the database"))
    assert postgres.password not in message and "***" in message and "odd failure" in message


@pytest.mark.parametrize("first_page", ["", "train?epochs=3"])
def test_every_page_of_a_server_whose_database_refuses_it_says_so_plainly(tmp_path, postgres, first_page):
    url, says, _ = _bad_urls(postgres)["wrong password"]
    log = tmp_path / "server.log"
    proc, address = appserver.start(log, MNIST_LIVE_DATABASE_URL=url)
    try:
        appserver.wait_ready(address)
        path, _, query = first_page.partition("?")

        async def visit():
            s = await Session.open(address, path, query)
            page = (s.texts(), [e.WhichOneof("type") for e in s.elements.values()])
            await s.close()
            return page
        texts, kinds = protocol.run(visit())
    finally:
        appserver.stop(proc)
    assert any(says in t and "Nothing you saved is lost" in t for t in texts), texts
    assert "exception" not in kinds and not any(postgres.password in t or WRONG in t for t in texts)
    server_log = log.read_text()
    assert "Traceback" not in server_log and WRONG not in server_log and postgres.password not in server_log
