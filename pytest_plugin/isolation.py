"""Where Covalent and AWS tooling keep their files, moved into one folder and back.

Importable without importing covalent (this package's modules import nothing heavy),
so a process can choose its layout before covalent is first imported.

- ``covalent_env(root)``: the environment that makes Covalent keep every file under
  ``root`` (config, database, caches, logs, plugin folder) and run without Dask.
- ``aws_env(root)``: for child processes, AWS config and credentials files that are
  empty files under ``root`` and no ambient identity, so nothing a child does can reach
  a real account through a developer's ``~/.aws`` or exported keys.
- ``covalent_moved_to(root)``: moves *this* process's Covalent, imported or not, into
  ``root`` and restores it on exit (see its docstring for what Covalent captured at
  import that has to move too).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Each variable covalent 0.240 reads (covalent/_shared_files/defaults.py) to place a
# file, and its folder under the root. Without COVALENT_EXECUTOR_DIR importing covalent
# creates ~/.config/covalent/executor_plugins; XDG_CACHE_HOME places the dispatch cache,
# the downloaded results and the local/dask executors' work folders.
COVALENT_DIRS = {
    "COVALENT_CONFIG_DIR": "config",
    "COVALENT_DATA_DIR": "data",
    "COVALENT_CACHE_DIR": "cache",
    "COVALENT_LOGDIR": "logs",
    "COVALENT_EXECUTOR_DIR": "executor_plugins",
    "XDG_CACHE_HOME": "xdg-cache",
}
# A server started with --no-cluster must default un-annotated electrons and the
# lattice's post-processing to the "local" executor instead of "dask".
NO_DASK = {"COVALENT_DISABLE_DASK": "1"}
# Variables through which boto3 would find a real identity or endpoint.
AWS_AMBIENT = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
)


def covalent_env(root: str | os.PathLike[str]) -> dict[str, str]:
    """The variables that put all of Covalent's files under ``root``, without Dask."""
    env = {name: os.path.join(root, folder) for name, folder in COVALENT_DIRS.items()}
    env["COVALENT_DATABASE"] = os.path.join(root, "data", "dispatcher.sqlite")
    return {**env, **NO_DASK}


def make_dirs(env: dict[str, str]) -> None:
    for name in COVALENT_DIRS:
        if name in env:
            Path(env[name]).mkdir(parents=True, exist_ok=True)


def aws_env(root: str | os.PathLike[str], base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with empty AWS config and
    credentials files under ``root`` and no ambient AWS identity or endpoint."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in AWS_AMBIENT}
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        path = os.path.join(root, name.lower())
        Path(root).mkdir(parents=True, exist_ok=True)
        Path(path).touch()
        env[name] = path
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


@contextlib.contextmanager
def covalent_moved_to(root: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
    """This process's Covalent keeps its files under ``root`` until the block ends.

    Sets ``covalent_env(root)`` in ``os.environ`` (child processes, and a first
    ``import covalent``, follow it), then moves what an earlier ``import covalent``
    captured from the old environment (covalent 0.240; docs/facts.md, "What importing
    Covalent fixes"):

    - the ConfigManager's file and settings: ``ct.dispatch``/``ct.get_result`` read the
      server's address, and the server its ``[executors.*]``, from there at call time;
    - the dispatch cache folder (``covalent._dispatcher_plugins.local``), where
      ``ct.dispatch`` leaves each dispatch's manifest;
    - the default executor (``DEFAULT_METADATA_VALUES``, "dask" unless
      COVALENT_DISABLE_DASK was set at import), which lattices take for post-processing.

    On exit all of it is restored as it was (the files under ``root`` are the caller's
    to remove); nothing is written to the old config file. Yields the environment set.
    """
    env = covalent_env(root)
    saved_env = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    restore: list[tuple[Any, str, Any]] = []
    try:
        make_dirs(env)
        import covalent  # noqa: F401  (a first import reads the environment set above)
        from covalent._shared_files import config as covalent_config

        manager = covalent_config._config_manager
        restore.append((manager, "config_data", copy.deepcopy(manager.config_data)))
        restore.append((manager, "config_file", manager.config_file))
        manager.config_file = os.path.join(env["COVALENT_CONFIG_DIR"], "covalent.conf")
        manager.generate_default_config()  # the defaults follow the environment set above
        # ConfigManager.set("executors.ecs", ...) nests a second "ecs" level when there is
        # no "executors" table yet; a server fills in each plugin's defaults on start.
        manager.config_data.setdefault("executors", {})
        manager.write_config()

        local = sys.modules["covalent._dispatcher_plugins.local"]
        restore.append((local, "dispatch_cache_dir", local.dispatch_cache_dir))
        local.dispatch_cache_dir = Path(manager.get("sdk.dispatch_cache_dir"))
        local.dispatch_cache_dir.mkdir(parents=True, exist_ok=True)

        for module in _modules_with_default_metadata():
            defaults = module.DEFAULT_METADATA_VALUES
            restore.append((defaults, "executor", defaults["executor"]))
            defaults["executor"] = "local"
        yield env
    finally:
        for target, name, value in reversed(restore):
            if isinstance(target, dict):
                target[name] = value
            else:
                setattr(target, name, value)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _modules_with_default_metadata() -> list[Any]:
    """Covalent's modules that copied DefaultMetadataValues into a module dict at import."""
    return [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("covalent.")
        and isinstance(getattr(module, "DEFAULT_METADATA_VALUES", None), dict)
        and "executor" in module.DEFAULT_METADATA_VALUES
    ]
