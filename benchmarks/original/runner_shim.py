"""Stands in for the original plugin's container image when the sandbox runs its task.

covalent-ecs-plugin 0.32.0 registers every task with the image
``public.ecr.aws/covalent/covalent-executor-base:stable`` and no command: the image's
default command runs ``covalent_aws_plugins/exec.py`` with the image's Python. The
sandbox agent runs this file instead (``bench_starters.OriginalImageStarter``), with
the original plugin's venv's Python, in the task's environment (S3_BUCKET_NAME,
COVALENT_TASK_FUNC_FILENAME, RESULT_FILENAME set by the plugin's task definition).
Stood in, and nothing more:

* the image's ``/covalent`` work folder (hard-coded in exec.py) becomes the task's own
  working directory, as every container has its own ``/covalent``;
* boto3 is pointed at the sandbox (boto_endpoint.py), which the image's AWS
  credentials/endpoint would do on Fargate.

exec.py itself runs unmodified otherwise, from the installed package.
"""

from __future__ import annotations

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    sys.path.insert(0, HERE)
    import boto_endpoint

    boto_endpoint.install(os.environ["AWS_ENDPOINT_URL"], "original-runner")
    # Found, not imported: the package's __init__ imports covalent (a circular import
    # when done before covalent itself), and the image runs exec.py as a plain script.
    spec = importlib.util.find_spec("covalent_aws_plugins")
    assert spec is not None and spec.submodule_search_locations, "covalent-aws-plugins missing"
    path = os.path.join(list(spec.submodule_search_locations)[0], "exec.py")
    with open(path) as f:
        source = f.read()
    source = source.replace('"/covalent"', repr(os.getcwd()))
    sys.argv = [path]
    code = compile(source, path, "exec")
    exec(code, {"__name__": "__main__", "__file__": path})  # noqa: S102 - the image's CMD


if __name__ == "__main__":
    main()
