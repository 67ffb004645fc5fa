"""The README keeps what a newcomer needs, and what it shows is what the code does:
the two commands first, every configuration key with its real default, and a failure
message as the executor writes it."""

import json
import re

from docs_text import README, section, user_facing_errors

from covalent_ecs_executor import failures
from covalent_ecs_executor.config import CONFIG_KEYS, plugin_defaults
from covalent_ecs_runtime import contract

TEXT = README.read_text()
# A newcomer's page; reference material belongs in docs/.
MAX_README_LINES = 260


def test_readme_starts_with_the_two_setup_commands():
    first_block = TEXT.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


def test_readme_stays_a_newcomers_page():
    assert len(TEXT.splitlines()) <= MAX_README_LINES


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
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", TEXT, flags=re.M))
    assert set(rows) == set(CONFIG_KEYS)
    for key, default in plugin_defaults().items():
        documented = rows[key].strip()
        assert documented.startswith(as_documented(default)) or documented.startswith("`''` (**required**)"), (key, documented)


FAILURE_MARKER = "<!-- tested: tests/unit/test_readme.py checks this is what failures.py says for such a task -->"


def test_the_failure_shown_is_what_the_executor_says_for_that_task():
    after = TEXT.split(FAILURE_MARKER, 1)[1]
    shown = re.match(r"\s*```text\n(.*?)\n```", after, flags=re.S).group(1)
    arn, tail = re.fullmatch(
        r"\[OutOfMemoryError\] ECS task (\S+) .*?\nLast lines of the task's log:\n(.*)", shown, flags=re.S
    ).groups()
    reason = "OutOfMemoryError: Container killed due to memory usage"
    task = {
        "taskArn": arn,
        "stopCode": "EssentialContainerExited",
        "stoppedReason": reason,
        "containers": [{"name": contract.CONTAINER_NAME, "exitCode": 137, "reason": reason}],
    }
    error = failures.classify_stopped_task(task, memory_mib=512, log_tail=tail + "\n")
    assert f"[{type(error).__name__}] {error}".rstrip("\n") == shown


def test_the_failure_table_names_every_error_a_user_sees():
    named = set(re.findall(r"`\[(\w+)\]`", section(README, "What a failure looks like")))
    assert named == user_facing_errors()
