# The runner image, for users who have Docker. `covalent-ecs publish-image` builds the
# same image without a daemon (README, "Publishing the runner image"); both put the same
# files at the same paths with the same config:
#
#   make runner-requirements            # build/runner-requirements.txt: this client's pins
#   docker build -t covalent-ecs-runner:$(.venv/bin/python -c \
#       "from covalent_ecs_runtime.contract import runner_image_tag as t; print(t())") .
#
# The Python minor of the base and the pinned cloudpickle must be the client's: tasks are
# cloudpickled on the client and loaded here.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Dependencies: exactly the client's versions of what the runner imports, no
# dependency resolution (covalent's full dependency set is twice the size).
COPY build/runner-requirements.txt /tmp/runner-requirements.txt
RUN python -m pip install --no-cache-dir --disable-pip-version-check --no-deps --no-compile \
        --target /opt/covalent-ecs/site-packages -r /tmp/runner-requirements.txt \
    && cd /opt/covalent-ecs/site-packages \
    && rm -rf covalent_ui covalent_dispatcher covalent_migrations bin /tmp/runner-requirements.txt \
    && find . -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
    && python -m compileall -q -j0 --invalidation-mode unchecked-hash /opt/covalent-ecs/site-packages

# The runner package (the same sources as the client's covalent_ecs_runtime).
COPY runtime_image/*.py /opt/covalent-ecs/runner/covalent_ecs_runtime/
RUN python -m compileall -q --invalidation-mode unchecked-hash /opt/covalent-ecs/runner \
    && install -d -o 65532 -g 65532 -m 0755 /home/runner

# `import covalent` writes its config under $HOME; .pyc are shipped and the tree is
# read-only for the runner's user; output reaches CloudWatch as it is written.
ENV HOME=/home/runner \
    PYTHONPATH=/opt/covalent-ecs/runner:/opt/covalent-ecs/site-packages \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /home/runner
# The argv contract (covalent_ecs_runtime.contract.ENTRY_POINT): ECS overrides only the
# command, so every task runs `python -m covalent_ecs_runtime run ...`.
ENTRYPOINT ["python", "-m", "covalent_ecs_runtime"]
CMD []
