"""covalent.conf's ``[executors.ecs]`` block: format it, write it, read it.

One writer for every command that produces a block (``covalent-ecs sandbox``,
``covalent-ecs infra deploy``): it sets ``[executors.ecs]`` and keeps every other
section. One reader for everything that uses the block: the executor inside a Covalent
server (Covalent's loaded configuration) and the CLI commands (a file). The default
path follows Covalent's own rule (``COVALENT_CONFIG_DIR``, then
``XDG_CONFIG_DIR``, then ``~/.config/covalent``; covalent/_shared_files/defaults.py),
computed here so the CLI does not import covalent (slow, and it writes into $HOME).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import ConfigError

SECTION = ("executors", "ecs")


def default_conf_path() -> str:
    base = (
        os.environ.get("COVALENT_CONFIG_DIR")
        or os.environ.get("XDG_CONFIG_DIR")
        or os.path.join(os.path.expanduser("~"), ".config", "covalent")
    )
    return os.path.join(base, "covalent.conf")


def toml_block(config: dict[str, Any]) -> str:
    """The ``[executors.ecs]`` table (JSON string escapes are valid TOML basic strings)."""
    lines = ["[executors.ecs]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    return "\n".join(lines)


def write_covalent_conf(path: str, config: dict[str, Any], *, keep_other_keys: bool = False) -> None:
    """Set ``[executors.ecs]`` in the covalent.conf at ``path``, keeping other sections.

    ``keep_other_keys`` keeps the section's keys that ``config`` does not name (a
    user's ``vcpu``, say); otherwise the section is replaced by ``config``.
    """
    import toml  # covalent's own config library (a dependency of covalent)

    document = _existing_document(path)
    executors = document.setdefault("executors", {})
    section = dict(executors.get("ecs") or {}) if keep_other_keys else {}
    section.update(config)
    executors["ecs"] = section
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        toml.dump(document, f)
    os.replace(tmp, path)


def check_conf_writable(path: str) -> None:
    """Raise ConfigError (or OSError naming the path) unless ``write_covalent_conf`` can
    write ``path``: its TOML, if it exists, parses, and its folder is writable."""
    _existing_document(path)
    folder = os.path.dirname(os.path.abspath(path))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: {existing} is not a writable folder")
    if os.path.isdir(path):
        raise ConfigError(f"cannot write {path}: it is a folder; give a covalent.conf file")


def _existing_document(path: str) -> dict[str, Any]:
    import toml

    if not os.path.exists(path):
        return {}
    with open(path) as f:
        try:
            return dict(toml.load(f))
        except toml.TomlDecodeError as err:
            raise ConfigError(
                f"{path} is not valid TOML: line {err.lineno}, column {err.colno}: {err.msg}; "
                "fix it or choose another file"
            ) from err


def read_executor_section(path: str | None) -> dict[str, Any] | None:
    """The ``[executors.ecs]`` table of covalent.conf; None when there is none.

    ``path=None`` reads what Covalent loaded in this process (``get_config``): inside a
    Covalent server that is the server's own configuration, the executor's source. A
    path reads that file (the CLI commands); a file that does not exist has no section.
    Raises ConfigError naming the file when it cannot be read or is not valid TOML.
    """
    if path is None:
        from covalent._shared_files.config import get_config

        try:
            section = get_config("executors.ecs")
        except (KeyError, TypeError):  # Covalent's answer for a missing key
            return None
        return dict(section) if isinstance(section, dict) else None
    if not os.path.exists(path):
        return None
    import toml  # covalent's own config library (a dependency of covalent)

    try:
        with open(path) as f:
            document = toml.load(f)
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from err
    except toml.TomlDecodeError as err:
        raise ConfigError(
            f"{path} is not valid TOML: line {err.lineno}, column {err.colno}: {err.msg}"
        ) from err
    executors = document.get("executors")
    section = executors.get("ecs") if isinstance(executors, dict) else None
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"{path}: executors.ecs is {section!r}, not a [executors.ecs] table")
    return section
