#!/bin/sh
# Create benchmarks/.venv-original with the original covalent-ecs-plugin (cached: only
# re-created when this file changes). It pins boto3==1.24.35 and drags covalent back to
# 0.220 / pydantic 1, so it never shares a venv with this project. Its aiohttp 3.8.1 has
# no wheel for Python 3.11: AIOHTTP_NO_EXTENSIONS=1 builds it pure-Python
# (docs/facts.md, "The original covalent-ecs-plugin").
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
VENV="$HERE/.venv-original"
PYTHON=${PYTHON:-python3.11}
PLUGIN=${ORIGINAL_PLUGIN:-covalent-ecs-plugin==0.32.0}
STAMP="$VENV/.installed-$(echo "$PLUGIN" | tr -c 'A-Za-z0-9.=\n' '_')"
if [ -f "$STAMP" ]; then exit 0; fi
echo "benchmarks: installing $PLUGIN into $VENV (once; ~1 min)" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
AIOHTTP_NO_EXTENSIONS=1 "$VENV/bin/python" -m pip install -q "$PLUGIN"
touch "$STAMP"
