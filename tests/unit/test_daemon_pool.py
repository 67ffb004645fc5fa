"""threads.DaemonThreadPool: ThreadPoolExecutor's job, minus holding the process's exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from covalent_ecs_executor.threads import DaemonThreadPool

# A call here takes microseconds; a ceiling for a broken pool on a loaded machine.
CEILING_S = 30.0
# A child interpreter importing the plugin (and so covalent) on a loaded 2-core machine.
PROCESS_CEILING_S = 120.0


def test_results_and_errors_come_back_to_the_caller():
    pool = DaemonThreadPool(max_workers=2)
    assert pool.submit(pow, 2, 10).result(timeout=CEILING_S) == 1024
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(timeout=CEILING_S)
    pool.shutdown()


def test_calls_run_concurrently_up_to_max_workers():
    workers = 4
    pool = DaemonThreadPool(max_workers=workers)
    barrier = threading.Barrier(workers, timeout=CEILING_S)  # passes only if all 4 run at once
    names = [pool.submit(lambda: (barrier.wait(), threading.current_thread().name)[1]) for _ in range(workers)]
    assert len({future.result(timeout=CEILING_S) for future in names}) == workers
    # No fifth thread: a later call reuses one of them.
    assert pool.submit(lambda: threading.current_thread().name).result(timeout=CEILING_S) in {
        future.result() for future in names
    }
    pool.shutdown()


def test_shutdown_runs_what_was_queued_then_ends_the_threads():
    pool = DaemonThreadPool(max_workers=1)
    gate = threading.Event()
    first = pool.submit(gate.wait, CEILING_S)
    second = pool.submit(pow, 3, 2)
    gate.set()
    pool.shutdown(wait=True)
    assert first.result() is True and second.result() == 9
    assert not [t for t in threading.enumerate() if t.name.startswith("covalent-ecs-pool")]
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(pow, 1, 1)


def test_a_call_still_running_does_not_hold_the_process_exit():
    """With ThreadPoolExecutor this script would wait ten minutes for its call."""
    script = textwrap.dedent(
        """
        import threading, time
        from covalent_ecs_executor.threads import DaemonThreadPool
        started = threading.Event()
        DaemonThreadPool(max_workers=1).submit(lambda: (started.set(), time.sleep(600)))
        started.wait(30)
        print("exiting", flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=PROCESS_CEILING_S)
    assert done.returncode == 0 and done.stdout == "exiting\n", done.stderr
