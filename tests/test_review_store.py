import sqlite3
import threading

import pytest

from passkit.review.store import CLEAN, PROBLEM, UNDO, DecisionStore, decisions_path


def test_schema_is_the_contract(tmp_path):
    DecisionStore.for_dataset(tmp_path).close()
    db = sqlite3.connect(decisions_path(tmp_path))
    columns = [(name, kind, notnull) for _, name, kind, notnull, _, _ in db.execute("PRAGMA table_info(decisions)")]
    assert columns == [
        ("seq", "INTEGER", 0),
        ("key", "TEXT", 1),
        ("label", "TEXT", 1),
        ("reason", "TEXT", 1),
        ("reviewer", "TEXT", 1),
        ("time", "TEXT", 1),
        ("queue", "TEXT", 1),
    ]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.IntegrityError):  # the CHECK constraint holds for other writers too
        db.execute("INSERT INTO decisions (key, label, reviewer, time, queue) VALUES ('a', 'maybe', 'r', 't', 'q')")


def test_synchronous_full(tmp_path):
    with DecisionStore.for_dataset(tmp_path) as store:
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_latest_row_per_key_is_the_decision_and_undo_clears_it(tmp_path):
    with DecisionStore.for_dataset(tmp_path) as store:
        store.record("a", PROBLEM, "review:human", reviewer="ann", queue="borderline")
        store.record("b", CLEAN, reviewer="ann", queue="borderline")
        store.record("a", CLEAN, reviewer="bob", queue="audit")
        store.record("b", PROBLEM, "review:other", reviewer="bob", queue="audit")
        store.undo("b", reviewer="bob", queue="audit")
        current = store.current()
        assert set(current) == {"a"}
        assert (current["a"].label, current["a"].reviewer, current["a"].queue) == (CLEAN, "bob", "audit")
        assert [d.label for d in store.history("b")] == [CLEAN, PROBLEM, UNDO]
        assert current["a"].time.endswith("+00:00") and "T" in current["a"].time
        assert len(store) == 5


def test_decisions_survive_reopening(tmp_path):
    with DecisionStore.for_dataset(tmp_path) as store:
        store.record_many(["a", "b", "c"], PROBLEM, "review:other", reviewer="ann", queue="all")
    with DecisionStore.for_dataset(tmp_path, readonly=True) as store:
        assert {k: d.reason for k, d in store.current().items()} == dict.fromkeys("abc", "review:other")


@pytest.mark.parametrize(
    ("label", "reason"),
    [("problem", ""), ("problem", "humans:person"), ("clean", "review:human"), ("maybe", ""), ("undo", "x")],
)
def test_invalid_decisions_are_refused(tmp_path, label, reason):
    with DecisionStore.for_dataset(tmp_path) as store, pytest.raises(ValueError):
        store.record("a", label, reason, reviewer="ann", queue="all")
    with DecisionStore.for_dataset(tmp_path) as store:
        assert len(store) == 0


def test_bad_keys_and_reviewer_refused_before_any_write(tmp_path):
    with DecisionStore.for_dataset(tmp_path) as store:
        with pytest.raises(ValueError, match="invalid keys"):
            store.record_many(["ok", "../etc/passwd"], CLEAN, reviewer="ann", queue="all")
        with pytest.raises(ValueError, match="reviewer"):
            store.record("ok", CLEAN, reviewer=" ", queue="all")
        assert len(store) == 0


def test_threads_and_a_second_process_connection_write_safely(tmp_path):
    with DecisionStore.for_dataset(tmp_path) as store, DecisionStore.for_dataset(tmp_path) as other:

        def work(target, prefix):
            for i in range(50):
                target.record(f"{prefix}-{i}", CLEAN, reviewer=prefix, queue="all")

        threads = [threading.Thread(target=work, args=(s, p)) for s, p in ((store, "x"), (other, "y"), (store, "z"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(store.current()) == 150
        seqs = [d.seq for d in store.current().values()]
        assert len(set(seqs)) == 150


def test_readonly_store_needs_the_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        DecisionStore.for_dataset(tmp_path, readonly=True)
