"""A small Covalent workflow whose electrons run as ECS Fargate tasks.

Each document's words are counted in a task of its own; one more task adds the
counts up. In production `executor="ecs"` uses the [executors.ecs] block of your
covalent.conf; in the tests it is the embedded sandbox (see tests/).
"""

from collections import Counter

import covalent as ct


@ct.electron(executor="ecs")
def count_words(text: str) -> dict:
    return dict(Counter(text.lower().split()))


@ct.electron(executor="ecs")
def add_counts(counts: list) -> dict:
    total = Counter()
    for count in counts:
        total.update(count)
    return dict(total)


@ct.lattice
def word_count(documents: list) -> dict:
    return add_counts([count_words(text) for text in documents])
