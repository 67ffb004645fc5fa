"""The README's configuration reference lists every key, with its real default."""

import json
import re
from pathlib import Path

from covalent_ecs_executor.config import CONFIG_KEYS, plugin_defaults

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_readme_starts_with_the_two_setup_commands():
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


def as_documented(default):
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if default == "":
        return "`''`"
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    if isinstance(default, str):
        return f"`{default}`"
    return f"`{json.dumps(default)}`"


def test_every_config_key_is_documented_with_its_default():
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", README, flags=re.M))
    assert set(rows) == set(CONFIG_KEYS)
    for key, default in plugin_defaults().items():
        documented = rows[key].strip()
        assert documented.startswith(as_documented(default)) or documented.startswith("`''` (**required**)"), (key, documented)
