"""From zero to a workflow: `covalent-ecs infra deploy` into the sandbox, the runner image
published (as a manifest: moto's ECR has no registry), `covalent-ecs doctor` all ✓, then
a lattice through the real Covalent server runs on exactly the resources the stack made."""

from __future__ import annotations

import covalent as ct
import pytest
from infra_support import connection_args, deploy, doctor, invoke, push_runner_image

from covalent_ecs_executor import ECSExecutor
from covalent_ecs_runtime import contract

pytestmark = pytest.mark.e2e


def test_a_workflow_runs_on_the_resources_infra_deploy_created(dispatch, fresh_sandbox, tmp_path):
    stack = deploy(fresh_sandbox, tmp_path)
    config = stack["config"]
    push_runner_image(fresh_sandbox, config["ecr_repo_name"])
    code, _, lines = doctor(stack["conf"])
    assert code == 0, lines
    try:
        on_stack = ECSExecutor(**config)

        @ct.electron(executor=on_stack)
        def cube(x):
            print(f"cubing {x}")
            return x**3

        @ct.lattice
        def cubes(n):
            return [cube(i) for i in range(n)]

        result = dispatch(cubes, 3)
        assert str(result.status) == "COMPLETED", result.error
        assert result.result == [0, 1, 8]

        cluster = config["ecs_cluster_name"]
        ran = [t for t in fresh_sandbox.tasks() if f":task/{cluster}/" in t["taskArn"]]
        assert len(ran) == 3
        assert all(config["s3_bucket_name"] in t["argv"] for t in ran)
        logs = fresh_sandbox.client("logs", internal=True)
        streams = logs.describe_log_streams(logGroupName=config["ecs_task_log_group_name"])["logStreams"]
        assert len(streams) == 3
        ecs = fresh_sandbox.client("ecs", internal=True)
        described = ecs.describe_tasks(cluster=cluster, tasks=[t["taskArn"] for t in ran])["tasks"]
        definition = ecs.describe_task_definition(taskDefinition=described[0]["taskDefinitionArn"])
        roles = definition["taskDefinition"]
        assert roles["executionRoleArn"] == config["ecs_task_execution_role_name"]
        assert roles["taskRoleArn"] == config["ecs_task_role_name"]
        # This version's runner, by the digest its tag pointed at when registered.
        registry = f"123456789012.dkr.ecr.{config['region']}.amazonaws.com"
        (pushed,) = fresh_sandbox.client("ecr", internal=True).describe_images(
            repositoryName=config["ecr_repo_name"], imageIds=[{"imageTag": contract.runner_image_tag()}]
        )["imageDetails"]
        image = f"{registry}/{config['ecr_repo_name']}@{pushed['imageDigest']}"
        assert roles["containerDefinitions"][0]["image"] == image
        # The stack's client policy may run only its own families: the config names them.
        assert definition["taskDefinition"]["family"].startswith(f"{stack['stack']}-")
    finally:
        destroyed = invoke("infra", "destroy", "--stack-name", stack["stack"], "--yes", *connection_args(fresh_sandbox))
        assert destroyed.exit_code == 0, destroyed.output
