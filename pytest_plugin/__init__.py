"""covalent-ecs-executor's pytest plugin (``plugin.py``, the ``covalent_ecs`` pytest11
entry point) and the isolation it relies on (``isolation.py``, which ``make demo`` and
this repository's tests/conftest.py use too, before they import covalent).

Nothing here imports covalent or this distribution's executor package at import time:
pytest loads the plugin in every run of every project installed next to it.
"""
