"""A stopped task or a result envelope becomes one typed, actionable error (pure)."""

import pytest

from covalent_ecs_executor import errors, failures
from covalent_ecs_executor.errors import RuntimeSkewError
from covalent_ecs_executor.failures import classify_stopped_task, envelope_error
from covalent_ecs_runtime import contract


def stopped(stop_code, reason="", exit_code=None, container_reason=""):
    container = {"name": contract.CONTAINER_NAME, "lastStatus": "STOPPED", "reason": container_reason}
    if exit_code is not None:
        container["exitCode"] = exit_code
    return {"taskArn": "arn:aws:ecs:r:1:task/c/t1", "lastStatus": "STOPPED", "stopCode": stop_code,
            "stoppedReason": reason, "containers": [container]}


def test_oom_kill_is_reported_with_a_memory_hint():
    error = classify_stopped_task(
        stopped("EssentialContainerExited", "Essential container in task exited", 137,
                "OutOfMemoryError: Container killed due to memory usage"),
        memory_mib=512,
    )
    assert isinstance(error, errors.OutOfMemoryError)
    assert "ran out of memory at 0.5 GB" in str(error) and "Raise `memory`" in str(error)
    assert error.exit_code == 137


def test_a_reason_ecs_repeats_for_task_and_container_is_said_once():
    reason = "OutOfMemoryError: Container killed due to memory usage"
    error = classify_stopped_task(stopped("EssentialContainerExited", reason, 137, reason))
    assert str(error).count(reason) == 1


def test_image_pull_failure_names_the_image_and_the_route():
    error = classify_stopped_task(
        stopped("TaskFailedToStart", "CannotPullContainerError: pull image manifest has been retried 5 time(s): not found"),
        image_uri="1.dkr.ecr.us-east-1.amazonaws.com/runner:v1",
    )
    assert isinstance(error, errors.ImagePullError)
    assert "1.dkr.ecr.us-east-1.amazonaws.com/runner:v1" in str(error)
    assert "the container never ran" in str(error) and "assign_public_ip" in str(error)


def test_resource_initialization_error_points_at_setup():
    error = classify_stopped_task(stopped("TaskFailedToStart", "ResourceInitializationError: failed to validate logger args"))
    assert isinstance(error, errors.NetworkSetupError)
    assert "ecs_task_log_group_name" in str(error)


def test_an_unreadable_secret_points_at_secrets_and_the_execution_role():
    reason = (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
        "retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s)"
    )
    error = classify_stopped_task(stopped("TaskFailedToStart", reason))
    assert isinstance(error, errors.NetworkSetupError)
    assert "could not read a secret named in `secrets`" in str(error)
    assert "SecretArns" in str(error) and "ecs_task_log_group_name" not in str(error)


def test_spot_interruption_is_a_capacity_error():
    error = classify_stopped_task(stopped("SpotInterruption", "Your Spot Task was interrupted.", 143))
    assert isinstance(error, errors.CapacityError)


def test_nonzero_exit_without_result_shows_the_log_tail():
    error = classify_stopped_task(
        stopped("EssentialContainerExited", "Essential container in task exited", 1),
        log_tail="Traceback...\nModuleNotFoundError: No module named 'boto3'",
        result_uri="s3://b/k/result.pkl",
    )
    assert type(error) is errors.TaskStoppedError
    assert "exited with code 1 without writing a result at s3://b/k/result.pkl" in str(error)
    assert "No module named 'boto3'" in str(error)


def test_user_exception_keeps_type_message_and_traceback():
    envelope = contract.new_envelope()
    envelope.update(outcome=contract.OUTCOME_RAISED, error={
        "kind": "user", "type": "builtins.ZeroDivisionError", "message": "division by zero",
        "traceback": 'Traceback (most recent call last):\n  File "wf.py", line 3\nZeroDivisionError: division by zero\n'})
    error = envelope_error(envelope)
    assert isinstance(error, errors.RemoteTaskError)
    assert str(error).startswith("builtins.ZeroDivisionError: division by zero")
    assert 'File "wf.py", line 3' in str(error)


def test_version_skew_is_its_own_error():
    envelope = contract.new_envelope()
    envelope.update(outcome=contract.OUTCOME_RUNNER_ERROR, error={
        "kind": contract.KIND_RUNTIME_SKEW, "type": "runtime_skew", "message": "python 3.12 in the runner image, 3.11 on the client", "traceback": ""})
    assert isinstance(envelope_error(envelope), errors.RuntimeSkewError)


def test_a_returned_value_is_no_error():
    envelope = contract.new_envelope()
    envelope.update(outcome=contract.OUTCOME_RETURNED, value=42)
    assert envelope_error(envelope) is None


@pytest.mark.parametrize("found", ["1", "3", "two"])
def test_a_result_of_another_format_is_refused_naming_publish_image(found):
    with pytest.raises(RuntimeSkewError) as err:
        failures.check_envelope_format(found, "s3://b/k/result.pkl")
    assert "s3://b/k/result.pkl" in str(err.value) and "not loaded" in str(err.value)
    assert "covalent-ecs publish-image" in str(err.value)


@pytest.mark.parametrize("found", [None, ""])
def test_an_unsigned_result_is_refused_as_an_integrity_error_naming_publish_image(found):
    with pytest.raises(errors.IntegrityError) as err:
        failures.check_envelope_format(found, "s3://b/k/result.pkl")
    assert err.value.object_uri == "s3://b/k/result.pkl"
    assert "not loaded" in str(err.value) and "covalent-ecs publish-image" in str(err.value)


def test_this_runners_envelope_format_is_accepted():
    failures.check_envelope_format(str(contract.ENVELOPE_FORMAT), "s3://b/k")


def _stopped_error(stop_code, reason, exit_code=None):
    return classify_stopped_task(stopped(stop_code, reason, exit_code))


@pytest.mark.parametrize(
    ("error", "relaunch"),
    [
        (_stopped_error("TaskFailedToStart", "Timeout waiting for network interface provisioning to complete."), True),
        (_stopped_error("TaskFailedToStart", "Capacity is unavailable at this time. Please try again later or in a different availability zone"), True),
        (_stopped_error("TaskFailedToStart", "CannotPullContainerError: unexpected status from HEAD request: 503 Service Unavailable"), True),
        (_stopped_error("TaskFailedToStart", "CannotPullContainerError: toomanyrequests: Rate exceeded"), True),
        (_stopped_error("TaskFailedToStart", "ResourceInitializationError: failed to get registry auth: i/o timeout"), True),
        # The cause will not pass by itself: no relaunch.
        (_stopped_error("TaskFailedToStart", "CannotPullContainerError: failed to resolve ref x: not found"), False),
        (_stopped_error("TaskFailedToStart", "ResourceInitializationError: awslogs-group is required"), False),
        # The code ran: never relaunched.
        (_stopped_error("EssentialContainerExited", "Essential container in task exited", 1), False),
        (_stopped_error("SpotInterruption", "Your Spot Task was interrupted.", 143), False),
        (errors.LaunchError("x", reasons="Capacity is unavailable at this time", transient=True), True),
        (errors.LaunchError("x", reasons="MISSING", transient=False), False),
        (errors.StartTimeoutError("late", phase="PENDING"), True),
        (errors.RemoteTaskError("boom", remote_type="ValueError", remote_traceback=""), False),
    ],
)
def test_only_failures_that_prove_the_code_never_ran_are_relaunched(error, relaunch):
    assert (failures.relaunch_reason(error) is not None) is relaunch


def test_a_spot_interruption_is_relaunched_only_when_opted_in():
    error = _stopped_error("SpotInterruption", "Your Spot Task was interrupted.", 143)
    assert failures.relaunch_reason(error, rerun_on_interruption=True).startswith("Spot interruption")


def test_a_task_that_filled_its_disk_is_told_to_raise_ephemeral_storage():
    raised = envelope_error({
        **contract.new_envelope(),
        "outcome": contract.OUTCOME_RAISED,
        "error": {"type": "builtins.OSError", "message": "[Errno 28] No space left on device",
                  "traceback": "Traceback ...\nOSError: [Errno 28] No space left on device"},
    })
    assert "raise `ephemeral_storage`" in str(raised)
    stopped_task = classify_stopped_task(
        stopped("EssentialContainerExited", "Essential container in task exited", 1),
        log_tail="tar: write error: No space left on device",
    )
    assert "ran out of disk space" in str(stopped_task) and "ephemeral_storage" in str(stopped_task)


def test_a_payload_the_runner_could_not_verify_is_an_integrity_error_naming_it():
    envelope = contract.new_envelope()
    envelope.update(outcome=contract.OUTCOME_RUNNER_ERROR, error={
        "kind": contract.KIND_PAYLOAD_UNVERIFIED, "type": contract.KIND_PAYLOAD_UNVERIFIED,
        "message": "the task payload s3://b/p.pkl does not carry this run's signature, so it was not loaded",
        "traceback": ""})  # fmt: skip
    error = envelope_error(envelope, payload_uri="s3://b/p.pkl")
    assert isinstance(error, errors.IntegrityError) and error.object_uri == "s3://b/p.pkl"
    assert "s3://b/p.pkl" in str(error) and "did not run" in str(error)


def test_a_runner_that_refused_its_invocation_points_at_publish_image():
    error = classify_stopped_task(stopped("EssentialContainerExited", "Essential container in task exited",
                                          contract.EXIT_USAGE))
    assert "refused to start" in str(error) and "covalent-ecs publish-image" in str(error)
