"""pytest plugin: run your workflows' ``executor="ecs"`` electrons offline, in CI.

Installed with covalent-ecs-executor as the ``covalent_ecs`` ``pytest11`` entry point
(``-p no:covalent_ecs`` turns it off). Fixtures, session-scoped, started only when a
test asks for one (itself or through another fixture):

``ecs_sandbox``
    The embedded sandbox (local AWS API + local Fargate agent, needs the ``[sandbox]``
    extra) in a child process: ``.executor_config`` (keyword arguments for
    ``ECSExecutor``), ``.calls()``, ``.tasks()``, ``.add_fault(...)``,
    ``.clear_faults()``, ``.client(service)``.
``covalent_ecs_server``
    A Covalent server on 127.0.0.1 whose ``[executors.ecs]`` is ``ecs_sandbox``'s:
    ``ct.dispatch``/``ct.get_result`` in the tests reach it, ``executor="ecs"``
    electrons run on the sandbox; ``.result(dispatch_id, timeout_s=...)`` waits for a
    final state with a ceiling (``ct.get_result(wait=True)`` has none).

Options: ``--ecs-sandbox-aws-limits`` (throttle like an AWS account);
``--ecs-sandbox-keep-state`` or ini ``ecs_sandbox_keep_state = true`` (keep the
session's folder, with the sandbox's state and the server's log, and print its path).

How a run stays unchanged, and how the server is isolated
---------------------------------------------------------
* Nothing happens at import or in a hook. This module is outside the
  ``covalent_ecs_executor`` package on purpose: importing that package imports
  covalent, and importing covalent writes ~/.config/covalent, ~/.cache/covalent and
  ~/.local/share/covalent and fixes Covalent's folders for the rest of the process.
  pytest imports entry-point plugins before any conftest.py, so such an import would
  touch every pytest run in the environment and defeat a conftest.py that sets
  COVALENT_CONFIG_DIR first. Here only pytest and the standard library are imported;
  the fixtures import the rest when they run.
* Whether a session uses the fixtures is known only after collection, and collection
  imports the test modules, which import covalent with the user's environment.
  Isolating Covalent before collection "in case" would change what those modules see
  (an ``ECSExecutor()`` built at import, a ``ct.set_config`` in a conftest) in runs that
  never use the fixtures. So ``covalent_ecs_server`` moves the covalent already
  imported into the session's folder instead (``isolation.covalent_moved_to``): its
  config file and settings, the dispatch cache and the default executor that covalent
  captured at import; ``COVALENT_*`` in ``os.environ`` point there for the session, so
  child processes and ``covalent-ecs`` commands read the same covalent.conf. At the
  end of the session all of it is restored; the user's covalent.conf is never written.
* The sandbox and the server run with the session folder's Covalent directories and
  with empty AWS config/credentials files and no AWS identity variables: they never
  read the user's covalent.conf or ~/.aws, and create nothing in $HOME.
* Teardown: pytest finalizes session fixtures after a failure and after Ctrl-C
  (KeyboardInterrupt ends the session normally). The server is stopped with
  ``covalent stop`` (which waits for its processes), the sandbox with SIGTERM (it stops
  every task's process group first), then the folder is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

_KEEP_STATE_INI = "ecs_sandbox_keep_state"
_KEPT_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("covalent-ecs", "covalent-ecs-executor's sandbox fixtures")
    group.addoption(
        "--ecs-sandbox-aws-limits",
        action="store_true",
        default=False,
        help="ecs_sandbox throttles ECS calls like an AWS account (token buckets, 'Rate exceeded').",
    )
    group.addoption(
        "--ecs-sandbox-keep-state",
        action="store_true",
        default=None,
        help=f"keep the session's sandbox and Covalent folder and print its path (ini: {_KEEP_STATE_INI}).",
    )
    parser.addini(
        _KEEP_STATE_INI,
        type="bool",
        default=False,
        help="keep the ecs_sandbox / covalent_ecs_server session folder for debugging.",
    )


def _keep_state(config: pytest.Config) -> bool:
    flag = config.getoption("--ecs-sandbox-keep-state")
    return bool(config.getini(_KEEP_STATE_INI) if flag is None else flag)


@pytest.fixture(scope="session")
def _covalent_ecs_folder(pytestconfig: pytest.Config) -> Iterator[str]:
    """The session's folder: the sandbox's state, the server's Covalent dirs, AWS files."""
    root = tempfile.mkdtemp(prefix="covalent-ecs-pytest-")
    try:
        yield root
    finally:
        if _keep_state(pytestconfig):
            pytestconfig.stash[_KEPT_KEY] = root
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def ecs_sandbox(pytestconfig: pytest.Config, _covalent_ecs_folder: str) -> Iterator[Any]:
    """The embedded sandbox (local AWS API + Fargate agent) for the session: a
    SandboxClient with .executor_config, .calls(), .tasks(), .add_fault(...)."""
    from .isolation import aws_env, covalent_env

    try:
        from covalent_ecs_executor.sandbox import SandboxProcess
    except ModuleNotFoundError as exc:  # moto is the [sandbox] extra
        missing = (exc.name or "").partition(".")[0]
    else:
        missing = ""
    if missing:  # outside the except block: the message alone, no chained traceback
        pytest.fail(
            f"the ecs_sandbox fixture needs {missing!r}, which is not installed: "
            "pip install 'covalent-ecs-executor[sandbox]'",
            pytrace=False,
        )
    root = _covalent_ecs_folder
    env = {**aws_env(os.path.join(root, "aws")), **covalent_env(os.path.join(root, "sandbox-covalent"))}
    process = SandboxProcess(
        state_dir=os.path.join(root, "sandbox"),
        aws_limits=pytestconfig.getoption("--ecs-sandbox-aws-limits"),
        env=env,
        # Payloads are staged through this folder by the executor (default ~/.cache).
        executor_overrides={"cache_dir": os.path.join(root, "staging")},
    )
    with process as client:
        yield client


@pytest.fixture(scope="session")
def covalent_ecs_server(ecs_sandbox: Any, _covalent_ecs_folder: str) -> Iterator[Any]:
    """A Covalent server on 127.0.0.1 for the session whose executor="ecs" is
    ecs_sandbox; ct.dispatch reaches it. .result(dispatch_id, timeout_s=...) waits."""
    from .isolation import aws_env, covalent_moved_to

    with covalent_moved_to(os.path.join(_covalent_ecs_folder, "covalent")):
        from covalent_ecs_executor.sandbox.covalent_server import CovalentServer

        server = CovalentServer(
            executor_config=ecs_sandbox.executor_config,
            env=aws_env(os.path.join(_covalent_ecs_folder, "aws")),
        )
        with server:
            yield server


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    kept = config.stash.get(_KEPT_KEY, None)
    if kept:
        terminalreporter.write_line(f"covalent-ecs: kept the sandbox and Covalent state in {kept}")
