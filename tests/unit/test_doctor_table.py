"""doctor's table of checks: every check listed once, skips that say which check they
waited for, facts wired from earlier rows, the configuration judged before any AWS call,
and a report that counts in correct English."""

from __future__ import annotations

import inspect
import io

import pytest
from rich.console import Console

from covalent_ecs_executor.config import plugin_defaults
from covalent_ecs_executor.errors import AWSSetupError
from covalent_ecs_executor.setup import doctor
from covalent_ecs_executor.setup.conffile import write_covalent_conf
from covalent_ecs_executor.setup.doctor import CHECKS, INPUTS, Check, Failed, Row, run_checks
from covalent_ecs_executor.setup.doctor_report import lines, summary, summary_line
from covalent_ecs_executor.setup.doctor_rules import failed, judge_config, passed

NAMES = [row.name for row in CHECKS]
NETWORK = {"ecs_task_subnet_id": "subnet-0123abcd", "ecs_task_security_group_id": "sg-0123abcd"}


def test_each_check_takes_exactly_the_facts_its_row_names_given_by_earlier_rows():
    available = set(INPUTS)
    for row in CHECKS:
        parameters = inspect.signature(row.check).parameters.values()
        assert all(p.kind is p.KEYWORD_ONLY for p in parameters), row.name
        assert {p.name for p in parameters} == set(row.needs), row.name
        assert set(row.needs) <= available, f"{row.name} needs a fact no earlier row gives"
        available |= set(row.gives)
    assert len(set(NAMES)) == len(NAMES)


def test_a_missing_conf_fails_config_and_lists_every_other_check_as_not_checked(tmp_path):
    path = tmp_path / "absent.conf"
    checks = run_checks(str(path), {})
    assert [c.name for c in checks] == NAMES
    assert checks[0].status == "fail" and f"cannot read {path}: no such file" in checks[0].detail
    assert f"--write-conf {path}" in checks[0].fix
    assert all(c.status == "skip" and c.detail == "not checked: config failed" for c in checks[1:])


def test_a_conf_without_a_network_stops_at_launch_settings_before_any_aws_call(tmp_path):
    path = tmp_path / "covalent.conf"
    write_covalent_conf(str(path), {"region": "us-east-1"})
    checks = {c.name: c for c in run_checks(str(path), {})}
    assert checks["config"].status == "ok" and str(path) in checks["config"].detail
    assert checks["launch settings"].status == "fail"
    assert "ecs_task_subnet_id and ecs_task_security_group_id" in checks["launch settings"].detail
    assert checks["credentials"].detail == "not checked: launch settings failed"
    assert checks["runner image"].detail == "not checked: launch settings failed"


def test_a_skip_names_the_check_that_failed_first_not_the_one_in_between(tmp_path):
    def first(*, conf_path, overrides):
        return failed("broken", "mend it")

    def second(*, a):
        raise AssertionError("not run without its fact")

    def third(*, b):
        raise AssertionError("not run without its fact")

    def unrelated(*, conf_path):
        return passed("fine")

    table = (
        Row("first", first, needs=INPUTS, gives=("a",)),
        Row("second", second, needs=("a",), gives=("b",)),
        Row("third", third, needs=("b",)),
        Row("unrelated", unrelated, needs=("conf_path",)),
    )
    assert run_checks(str(tmp_path / "c.conf"), {}, table) == [
        Check("first", "fail", "broken", "mend it"),
        Check("second", "skip", "not checked: first failed"),
        Check("third", "skip", "not checked: first failed"),
        Check("unrelated", "ok", "fine"),
    ]


def test_a_check_that_raises_is_a_failed_check_with_a_fix(tmp_path):
    def deep(*, conf_path):
        raise Failed("role r does not exist", "create it")

    def aws_refused(*, conf_path):
        raise AWSSetupError("could not read x: AWS denied access")

    table = (Row("deep", deep, needs=("conf_path",)), Row("aws", aws_refused, needs=("conf_path",)))
    deep_check, aws_check = run_checks(str(tmp_path / "c.conf"), {}, table)
    assert deep_check == Check("deep", "fail", "role r does not exist", "create it")
    assert aws_check.status == "fail" and aws_check.fix == doctor.IAM_FIX


def test_a_check_that_passes_must_give_the_facts_its_row_promises(tmp_path):
    table = (Row("liar", lambda *, conf_path: passed("ok"), needs=("conf_path",), gives=("x",)),)
    with pytest.raises(RuntimeError, match="'liar' gave"):
        run_checks(str(tmp_path / "c.conf"), {}, table)


WRITE = "--write-conf /c.conf"


@pytest.mark.parametrize(
    ("exists", "section", "status", "words", "fix"),
    [
        (False, None, "fail", "no such file, so every key would take its default", WRITE),
        (True, None, "fail", "has no [executors.ecs] section", WRITE),
        (True, {}, "fail", "holds only the defaults", WRITE),
        (True, plugin_defaults(), "fail", "holds only the defaults", WRITE),
        (True, {"vcpu": 3}, "fail", "vcpu", "fix it in /c.conf"),
        (True, {"region": "us-east-1", **NETWORK}, "ok", "valid (/c.conf)", ""),
    ],
)
def test_judge_config_says_what_the_file_holds(exists, section, status, words, fix):
    outcome = judge_config("/c.conf", exists, section, {})
    assert outcome.status == status and words in outcome.detail
    assert fix in outcome.fix and (outcome.fix == "") == (fix == "")


def test_overrides_are_named_and_validated_with_the_file():
    outcome = judge_config(
        "/c.conf", True, {"region": "us-east-1"}, {"endpoint_url": "http://127.0.0.1:1"}
    )
    assert outcome.status == "ok" and "with --endpoint-url" in outcome.detail
    bad = judge_config("/c.conf", True, {"region": "us-east-1"}, {"region": "mars"})
    assert bad.status == "fail" and "argument region='mars'" in bad.detail


def test_the_summary_counts_with_correct_plurals():
    ok, bad, skipped = Check("a", "ok", "d"), Check("b", "fail", "d", "f"), Check("c", "skip", "d")
    assert summary_line([ok]) == "1 check: all passed"
    assert summary_line([bad]) == "1 check: 1 failed"
    assert summary_line([ok, ok]) == "2 checks: all passed"
    assert (
        summary_line([ok, bad, skipped, skipped]) == "4 checks: 1 passed, 1 failed, 2 not checked"
    )
    assert summary([ok, skipped]) == {
        "ok": True,
        "checks": [ok.as_dict(), skipped.as_dict()],
        "summary": "2 checks: 1 passed, 1 not checked",
    }
    # A warning (something not verified) is counted but does not fail doctor.
    warned = Check("w", "warn", "d", "h")
    assert summary_line([ok, warned, warned]) == "3 checks: 1 passed, 2 warnings"
    assert summary([ok, warned])["ok"] is True


def test_the_lines_show_a_mark_per_status_and_keep_square_brackets():
    checks = [
        Check("config", "fail", "no [executors.ecs] section\nsecond line", "add [executors.ecs]"),
        Check("launch settings", "skip", "not checked: config failed"),
    ]
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, highlight=False)
    for line in lines(checks):
        console.print(line)
    assert out.getvalue().splitlines() == [
        "✗ config: no [executors.ecs] section",
        "    second line",
        "    fix: add [executors.ecs]",
        "– launch settings: not checked: config failed",
        "",
        "2 checks: 1 failed, 1 not checked",
    ]
