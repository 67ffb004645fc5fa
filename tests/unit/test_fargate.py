"""The Fargate size table and unit conversions (no I/O)."""

import pytest

from covalent_ecs_executor import fargate


def test_quarter_vcpu_is_256_units_not_zero():
    # The original plugin sent cpu=str(int(0.25)) == "0" in one release.
    assert fargate.task_size(0.25, 0.5) == (256, 512)


@pytest.mark.parametrize(
    ("vcpu", "memory_gb", "expected"),
    [(0.5, 4, (512, 4096)), (1, 8, (1024, 8192)), (4, 30, (4096, 30720)), (16, 120, (16384, 122880))],
)
def test_largest_memory_of_each_size_is_accepted(vcpu, memory_gb, expected):
    assert fargate.task_size(vcpu, memory_gb) == expected


def test_memory_outside_the_table_names_the_valid_sizes():
    with pytest.raises(ValueError, match=r"memory=3 GB is not offered with vcpu=0.25; choose one of 0.5, 1, 2 GB"):
        fargate.task_size(0.25, 3)


def test_vcpu_outside_the_table_names_the_valid_sizes():
    with pytest.raises(ValueError, match=r"vcpu=0.3 is not a Fargate size; choose one of 0.25, 0.5, 1, 2, 4, 8, 16"):
        fargate.cpu_units(0.3)


def test_8_vcpu_memory_steps_by_4_gb():
    assert fargate.memory_choices_gb(8) == [16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60]
