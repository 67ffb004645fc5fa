"""The public task-events hook (covalent_ecs_executor.events): who is told what."""

import logging

import pytest

from covalent_ecs_executor import events


@pytest.fixture
def told():
    seen = []

    def callback(event):
        seen.append(event)

    events.subscribe(callback)
    yield callback, seen
    events.unsubscribe(callback)


def test_a_subscriber_gets_each_event_once_with_its_kind_and_fields(told):
    callback, seen = told
    events.subscribe(callback)  # subscribing twice still tells it once
    events.emit(events.TASK_FINISHED, task_arn="arn:1", exit_seen=1.5)
    assert seen == [{"event": "task_finished", "task_arn": "arn:1", "exit_seen": 1.5}]


def test_an_unsubscribed_callback_hears_nothing_more(told):
    callback, seen = told
    events.unsubscribe(callback)
    events.unsubscribe(callback)  # unknown callbacks are ignored
    events.emit(events.POLL_CYCLE, watched=1)
    assert seen == []


def test_a_failing_subscriber_is_logged_and_the_others_still_hear(told, caplog):
    _, seen = told

    def broken(event):
        raise RuntimeError("subscriber bug")

    events.subscribe(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="covalent_ecs_executor.events"):
            events.emit(events.POLL_CYCLE, watched=2)  # must not raise into the executor
    finally:
        events.unsubscribe(broken)
    assert seen == [{"event": "poll_cycle", "watched": 2}]
    assert "subscriber bug" in caplog.text


def test_a_subscriber_cannot_change_what_the_next_one_is_told(told):
    _, seen = told

    def meddler(event):
        event["watched"] = -1

    events.subscribe(meddler)
    events.unsubscribe(told[0])
    events.subscribe(told[0])  # now after the meddler
    try:
        events.emit(events.POLL_CYCLE, watched=3)
    finally:
        events.unsubscribe(meddler)
    assert seen == [{"event": "poll_cycle", "watched": 3}]
