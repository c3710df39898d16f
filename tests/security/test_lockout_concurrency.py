"""Account lockout under concurrent sign-in attempts (RELIABILITY.md item 29)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from analytics import auth
from analytics.errors import AuthError
from analytics.store import open_store
from analytics.store.schema import User

PW = "correct horse battery"
ATTEMPTS = 30


class CountingHasher:
    """The real Argon2 hasher, counting the guesses checked against the account's hash.

    Each check is slowed down a little, as on a busy server, so that every attempt is
    in flight before the first check returns; checks of ``slow_password`` take longer.
    """

    def __init__(self, real, account_hash: str, delay_s: float = 0.3,
                 slow_password: str | None = None, slow_s: float = 1.5) -> None:
        self.real, self.account_hash, self.delay_s = real, account_hash, delay_s
        self.slow_password, self.slow_s = slow_password, slow_s
        self.checked = 0
        self._lock = threading.Lock()

    def verify(self, hash_: str, password: str) -> bool:
        if hash_ == self.account_hash:
            with self._lock:
                self.checked += 1
            time.sleep(self.slow_s if password == self.slow_password else self.delay_s)
        return self.real.verify(hash_, password)

    def __getattr__(self, name: str):
        return getattr(self.real, name)


@pytest.fixture
def store(db_url):
    st = open_store(url=db_url)
    auth.create_user(st, "victim", "clinician", PW)
    yield st
    st.dispose()


def _account(store) -> User:
    with store.session() as s:
        return s.execute(select(User).where(User.username == "victim")).scalar_one()


def _attack(store, monkeypatch, passwords: list[str], *, hasher: CountingHasher | None = None,
            first: int | None = None) -> tuple[CountingHasher, list]:
    """Send ``passwords`` at once from as many threads; ``first`` (an index) goes first,
    the others once its attempt is under way."""
    hasher = hasher or CountingHasher(auth._hasher, _account(store).password_hash)
    monkeypatch.setattr(auth, "_hasher", hasher)
    barrier = threading.Barrier(len(passwords) - (first is not None))
    started = threading.Event()
    results: list = [None] * len(passwords)

    def attempt(i: int) -> None:
        if i == first:
            started.set()
        else:
            barrier.wait()
        try:
            results[i] = auth.authenticate(store, "victim", passwords[i])
        except AuthError as e:
            results[i] = e

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(passwords))]
    if first is not None:
        threads[first].start()
        started.wait()
        while hasher.checked == 0:  # its password is being checked
            time.sleep(0.005)
    for i, t in enumerate(threads):
        if i != first:
            t.start()
    for t in threads:
        t.join(120)
    return hasher, results


def test_thirty_concurrent_guesses_check_at_most_lock_after_and_lock_the_account(
        store, monkeypatch):
    wrong = [f"wrong password {i:02d}" for i in range(ATTEMPTS)]
    hasher, results = _attack(store, monkeypatch, wrong)
    assert hasher.checked <= auth.LOCK_AFTER, f"{hasher.checked} of {ATTEMPTS} checked"
    assert all(isinstance(r, AuthError) for r in results)
    assert sum("locked" in str(r) for r in results) >= ATTEMPTS - auth.LOCK_AFTER
    assert _account(store).locked_until is not None
    with pytest.raises(AuthError, match="locked for"):
        auth.authenticate(store, "victim", PW)


def test_the_right_password_sent_with_eleven_wrong_ones_is_refused_once_they_locked(
        store, monkeypatch):
    # what twelve browser tabs did: eleven wrong passwords and the right one at once;
    # the right one arrives while the wrong ones are being checked
    wrong = [f"wrong password {i:02d}" for i in range(11)]
    hasher = CountingHasher(auth._hasher, _account(store).password_hash, delay_s=1.0)
    burst = threading.Thread(target=_attack, args=(store, monkeypatch, wrong),
                             kwargs={"hasher": hasher})
    burst.start()
    deadline = time.monotonic() + 30
    while hasher.checked < auth.LOCK_AFTER and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        with pytest.raises(AuthError, match="locked for"):
            auth.authenticate(store, "victim", PW)
    finally:
        burst.join(120)
    assert hasher.checked == auth.LOCK_AFTER, f"{hasher.checked} of 12 checked"
    account = _account(store)
    assert account.locked_until is not None and account.failed_logins == auth.LOCK_AFTER


def test_a_right_password_being_checked_when_concurrent_wrong_ones_lock_opens_no_session(
        store, monkeypatch):
    passwords = [PW] + [f"wrong password {i:02d}" for i in range(11)]
    hasher = CountingHasher(auth._hasher, _account(store).password_hash, slow_password=PW)
    hasher, results = _attack(store, monkeypatch, passwords, hasher=hasher, first=0)
    assert hasher.checked <= auth.LOCK_AFTER, f"{hasher.checked} of 12 checked"
    assert not any(isinstance(r, auth.Actor) for r in results), "a session was opened"
    assert "locked" in str(results[0])
    assert _account(store).locked_until is not None
