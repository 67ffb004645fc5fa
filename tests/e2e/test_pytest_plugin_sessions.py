"""Whole pytest sessions with the plugin, each in a subprocess on a tiny project, with a
temporary HOME and TMPDIR and none of this session's Covalent or AWS variables:

- a session that asks for no fixture is the session it would be without the plugin;
- a missing [sandbox] extra is one clear line, not a traceback;
- Ctrl-C while a task runs ends every process the fixtures started and puts
  Covalent back as the test modules found it;
- the keep-state option keeps the session's folder and says where it is.

The plugin comes from its entry point (this repository's editable install), as it
does for a user: nothing passes ``-p`` to load it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from processes import processes_mentioning, sigint_as_in_a_terminal
from waiting import wait_for

# Starting the sandbox and the server is seconds; these bound a broken run on a busy
# 2-core machine.
SESSION_CEILING_S = 240
TEARDOWN_CEILING_S = 120

# Installed in each subprocess before anything else (sitecustomize): records every
# process the interpreter starts and every file it opens for writing, through
# Python's audit hooks (PEP 578), as JSON lines.
AUDIT_HOOK = '''
import json, os, sys
_log = open(os.environ["AUDIT_LOG"], "a", buffering=1)
_SPAWNS = {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system", "os.exec"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT

def _hook(event, args):
    if event in _SPAWNS:
        _log.write(json.dumps({"spawn": event, "args": repr(args)[:300]}) + "\\n")
    elif event == "open" and isinstance(args[0], str):
        mode, flags = args[1], args[2]
        if (mode and set(mode) & set("wax+")) or (mode is None and flags & _WRITE_FLAGS):
            _log.write(json.dumps({"write": args[0]}) + "\\n")
    elif event == "os.mkdir":
        _log.write(json.dumps({"write": os.fsdecode(args[0])}) + "\\n")

sys.addaudithook(_hook)
'''

# What a test module sees of Covalent: where its config lives and what it says.
COVALENT_STATE = '''
import json, os, sys

def covalent_state():
    from covalent._shared_files import config
    local = sys.modules["covalent._dispatcher_plugins.local"]
    electron = sys.modules["covalent._workflow.electron"]
    return {
        "config_file": config._config_manager.config_file,
        "config": config.get_config(),
        "env": {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
        "dispatch_cache_dir": str(local.dispatch_cache_dir),
        "default_executor": electron.DEFAULT_METADATA_VALUES["executor"],
    }

def record(name, value):
    with open(os.path.join(os.environ["RECORDS"], name + ".json"), "w") as f:
        json.dump(value, f, default=str)
'''


def make_project(root: Path, files: dict[str, str]) -> Path:
    """A tiny project: pytest.ini (so this repository's settings stay out) + files."""
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "covalent_state.py").write_text(COVALENT_STATE)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


class Session:
    """One pytest run in a subprocess, with its own HOME, TMPDIR and records folder."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.dir = tmp_path / name
        self.home, self.tmp, self.records = self.dir / "home", self.dir / "tmp", self.dir / "records"
        hooks = self.dir / "hooks"
        for folder in (self.home, self.tmp, self.records, hooks):
            folder.mkdir(parents=True)
        (hooks / "sitecustomize.py").write_text(AUDIT_HOOK)
        self.audit_log = self.dir / "audit.jsonl"
        self.env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(hooks),
            "PYTHONDONTWRITEBYTECODE": "1",
            "AUDIT_LOG": str(self.audit_log),
            "RECORDS": str(self.records),
        }

    def argv(self, *args: str) -> list[str]:
        # pytest-asyncio (a dev tool here) only warns about its unset loop scope.
        return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:asyncio", *args]

    def run(self, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), cwd=project, env=self.env, capture_output=True, text=True,
            timeout=SESSION_CEILING_S,
        )  # fmt: skip

    def record(self, name: str) -> dict:
        return json.loads((self.records / f"{name}.json").read_text())

    def audit(self, kind: str) -> list[dict]:
        lines = self.audit_log.read_text().splitlines() if self.audit_log.exists() else []
        return [entry for entry in map(json.loads, lines) if kind in entry]

    def writes_outside_tmp(self) -> list[str]:
        ours = (str(self.tmp), str(self.records), str(self.audit_log), "/dev/")
        return sorted({e["write"] for e in self.audit("write") if not e["write"].startswith(ours)})

    def home_files(self) -> dict[str, str]:
        return {
            str(p.relative_to(self.home)): p.read_text().replace(str(self.home), "$HOME") if p.is_file() else ""
            for p in sorted(self.home.rglob("*"))
        }


PLAIN_PROJECT = {
    "conftest.py": """
        import sys
        from covalent_state import record

        def pytest_configure(config):
            record("configure", {
                "plugin_loaded": config.pluginmanager.has_plugin("covalent_ecs"),
                "covalent_imported": "covalent" in sys.modules,
            })
    """,
    "test_plain.py": """
        import covalent as ct  # at collection, as users' test modules do
        from covalent_state import covalent_state, record

        def test_what_covalent_looks_like():
            record("in_test", covalent_state())
    """,
}


def test_a_session_that_asks_for_no_fixture_is_the_session_it_would_be_without_the_plugin(tmp_path):
    project = make_project(tmp_path / "project", PLAIN_PROJECT)
    with_plugin, without = Session(tmp_path, "with-plugin"), Session(tmp_path, "without")
    for session, extra in ((with_plugin, ()), (without, ("-p", "no:covalent_ecs"))):
        run = session.run(project, *extra)
        assert run.returncode == 0, run.stdout + run.stderr

    assert with_plugin.record("configure") == {"plugin_loaded": True, "covalent_imported": False}
    assert without.record("configure")["plugin_loaded"] is False
    assert with_plugin.audit("spawn") == []  # started no process
    # Same Covalent configuration and environment, the same files written (covalent's
    # own, on import) and the same HOME; each run's HOME/TMPDIR spelt alike.
    seen = [s.record("in_test") for s in (with_plugin, without)]
    texts = [
        json.dumps(r, sort_keys=True).replace(str(s.dir), "$RUN")
        for r, s in zip(seen, (with_plugin, without), strict=True)
    ]
    assert texts[0] == texts[1]
    assert [w.replace(str(with_plugin.dir), "$RUN") for w in with_plugin.writes_outside_tmp()] == [
        w.replace(str(without.dir), "$RUN") for w in without.writes_outside_tmp()
    ]
    assert with_plugin.home_files() == without.home_files()
    # The hook does see writes: covalent's own config file, written on import.
    assert any(w.endswith("/covalent.conf") for w in with_plugin.writes_outside_tmp())


def test_the_sandbox_fixture_without_moto_says_to_install_the_sandbox_extra(tmp_path):
    project = make_project(
        tmp_path / "project",
        {
            "conftest.py": """
                import sys
                sys.modules["moto"] = None  # as if the [sandbox] extra were not installed
            """,
            "test_needs_sandbox.py": """
                def test_uses_the_sandbox(ecs_sandbox):
                    pass
            """,
        },
    )
    session = Session(tmp_path, "no-moto")
    run = session.run(project)

    assert run.returncode == 1
    output = run.stdout + run.stderr
    assert (
        "the ecs_sandbox fixture needs 'moto', which is not installed: "
        "pip install 'covalent-ecs-executor[sandbox]'"
    ) in output
    assert "Traceback" not in output and "ModuleNotFoundError" not in output
    assert session.audit("spawn") == []
    assert os.listdir(session.tmp) == []


INTERRUPTED_PROJECT = {
    "conftest.py": """
        from covalent_state import covalent_state, record

        def pytest_unconfigure(config):  # after the session's fixtures were torn down
            record("after_session", covalent_state())
    """,
    "test_interrupted.py": """
        import os
        import time
        from pathlib import Path

        import covalent as ct
        from covalent_state import covalent_state, record

        record("at_collection", covalent_state())


        @ct.electron(executor="ecs")
        def wait_long():
            import time
            time.sleep(600)


        @ct.lattice
        def long_flow():
            return wait_long()


        def test_interrupted_while_its_task_runs(covalent_ecs_server, ecs_sandbox):
            dispatch_id = ct.dispatch(long_flow)()
            # The outer test waits for the ready file with a ceiling and then interrupts.
            while not any(
                t["lastStatus"] == "RUNNING" and (t["label"] or "").startswith(dispatch_id)
                for t in ecs_sandbox.tasks()
            ):
                time.sleep(0.1)
            Path(os.environ["RECORDS"], "ready").write_text(dispatch_id)
            time.sleep(600)  # a long test; Ctrl-C ends it
    """,
}


@pytest.mark.e2e
def test_ctrl_c_while_a_task_runs_ends_every_process_and_restores_covalent(tmp_path):
    project = make_project(tmp_path / "project", INTERRUPTED_PROJECT)
    session = Session(tmp_path, "interrupted")
    out = (session.dir / "pytest.out").open("w")
    process = subprocess.Popen(
        session.argv(), cwd=project, env=session.env, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=sigint_as_in_a_terminal,
    )  # fmt: skip
    try:
        wait_for(
            lambda: (session.records / "ready").exists() or process.poll() is not None,
            timeout_s=SESSION_CEILING_S,
            interval_s=0.2,
            what="the tiny session's task to run",
        )
        assert process.poll() is None, (session.dir / "pytest.out").read_text()
        started = processes_mentioning(str(session.tmp))
        # The sandbox, the Covalent server and the task (at least): the check can see them.
        assert len(started) >= 3, started
        process.send_signal(signal.SIGINT)  # to pytest alone: it has to stop the rest
        try:
            process.wait(timeout=TEARDOWN_CEILING_S)
        except subprocess.TimeoutExpired:
            still = processes_mentioning(str(session.tmp))
            tail = (session.dir / "pytest.out").read_text()[-4000:]
            pytest.fail(f"pytest did not end {TEARDOWN_CEILING_S} s after Ctrl-C; still running: "
                        f"{still}\nits output ends with:\n{tail}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.close()
        for line in processes_mentioning(str(session.tmp)):  # only if the test failed
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)

    output = (session.dir / "pytest.out").read_text()
    assert "KeyboardInterrupt" in output, output[-4000:]
    assert session.audit("spawn") != []  # the hook does see the processes started
    assert processes_mentioning(str(session.tmp)) == []
    assert os.listdir(session.tmp) == []
    assert session.record("after_session") == session.record("at_collection")


@pytest.mark.integration
@pytest.mark.parametrize("asked_by", ["option", "ini"])
def test_the_keep_state_option_keeps_the_session_folder_and_prints_where(tmp_path, asked_by):
    project = make_project(
        tmp_path / "project",
        {
            "test_sandbox.py": """
                def test_the_sandbox_throttles_as_asked(ecs_sandbox):
                    assert ecs_sandbox.limits()["enabled"] is True
            """,
        },
    )
    if asked_by == "ini":
        (project / "pytest.ini").write_text("[pytest]\necs_sandbox_keep_state = true\n")
    session = Session(tmp_path, "kept")
    keep = ["--ecs-sandbox-keep-state"] if asked_by == "option" else []
    run = session.run(project, *keep, "--ecs-sandbox-aws-limits")

    assert run.returncode == 0, run.stdout + run.stderr
    (line,) = [x for x in run.stdout.splitlines() if x.startswith("covalent-ecs: kept")]
    kept = Path(line.rsplit(" in ", 1)[1])
    assert kept.parent == session.tmp
    assert (kept / "sandbox" / "ready.json").is_file()
    assert processes_mentioning(str(session.tmp)) == []
