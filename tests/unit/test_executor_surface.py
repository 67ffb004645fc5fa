"""ECSExecutor's constructor and the live-task guard's stop reasons (pure parts)."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from covalent._shared_files.exceptions import TaskCancelledError

from covalent_ecs_executor import livetasks
from covalent_ecs_executor.config import CONFIG_KEYS
from covalent_ecs_executor.ecs import ECSExecutor
from covalent_ecs_executor.errors import LaunchError, TaskTimeoutError


def test_constructor_parameters_are_exactly_the_configuration_keys() -> None:
    # A renamed config field without a renamed parameter would silently drop the
    # user's argument into **kwargs under the old name.
    parameters = [
        name
        for name, p in inspect.signature(ECSExecutor.__init__).parameters.items()
        if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    assert parameters == list(CONFIG_KEYS)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (None, "Covalent stopped watching the task (dispatch d, node 1)"),
        (asyncio.CancelledError(), "Covalent stopped watching the task (dispatch d, node 1)"),
        (KeyboardInterrupt(), "Covalent stopped watching the task (dispatch d, node 1)"),
        (LaunchError("x"), "Covalent stopped watching the task after LaunchError (dispatch d, node 1)"),
        (
            livetasks.with_stop_reason(TaskTimeoutError("late"), "Time limit exceeded (2 s)"),
            "Time limit exceeded (2 s)",
        ),
        (
            livetasks.with_stop_reason(TaskCancelledError("c"), "Cancelled by Covalent (x)"),
            "Cancelled by Covalent (x)",
        ),
    ],
)
def test_stop_reason_names_what_ended_the_run(exc, expected) -> None:
    assert livetasks.stop_reason(exc, "dispatch d, node 1") == expected


def test_stop_reason_fits_ecs_limit() -> None:
    reason = livetasks.stop_reason(None, "x" * 400)
    assert len(reason) == livetasks.MAX_STOP_REASON_CHARS
