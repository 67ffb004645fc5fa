"""The Fargate cpu/memory table, and conversion from config units (vCPU, GB) to AWS units.

No I/O. AWS counts cpu in units (1024 per vCPU) and memory in MiB; the config speaks
vCPU and GB, so every conversion happens here, once.
Source: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
"""

from __future__ import annotations

CPU_UNITS_PER_VCPU = 1024
MIB_PER_GB = 1024


def _steps(start_gb: int, stop_gb: int, step_gb: int) -> tuple[int, ...]:
    return tuple(range(start_gb * MIB_PER_GB, stop_gb * MIB_PER_GB + 1, step_gb * MIB_PER_GB))


# cpu units -> the memory sizes (MiB) Fargate offers with it.
FARGATE_MEMORY_MIB_BY_CPU_UNITS: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: _steps(1, 4, 1),
    1024: _steps(2, 8, 1),
    2048: _steps(4, 16, 1),
    4096: _steps(8, 30, 1),
    8192: _steps(16, 60, 4),
    16384: _steps(32, 120, 8),
}


def vcpu_choices() -> list[float]:
    return [units / CPU_UNITS_PER_VCPU for units in FARGATE_MEMORY_MIB_BY_CPU_UNITS]


def cpu_units(vcpu: float) -> int:
    """vCPU -> cpu units; raises ValueError when Fargate offers no such size."""
    units = round(vcpu * CPU_UNITS_PER_VCPU)
    if units not in FARGATE_MEMORY_MIB_BY_CPU_UNITS or units != vcpu * CPU_UNITS_PER_VCPU:
        choices = ", ".join(_fmt(v) for v in vcpu_choices())
        raise ValueError(f"vcpu={_fmt(vcpu)} is not a Fargate size; choose one of {choices}")
    return units


def memory_mib(memory_gb: float) -> int:
    mib = memory_gb * MIB_PER_GB
    if mib != int(mib):
        raise ValueError(f"memory={_fmt(memory_gb)} GB is not a whole number of MiB")
    return int(mib)


def memory_choices_gb(vcpu: float) -> list[float]:
    return [mib / MIB_PER_GB for mib in FARGATE_MEMORY_MIB_BY_CPU_UNITS[cpu_units(vcpu)]]


def task_size(vcpu: float, memory_gb: float) -> tuple[int, int]:
    """(cpu_units, memory_mib) for a Fargate task; ValueError naming the valid memory sizes."""
    units = cpu_units(vcpu)
    mib = memory_mib(memory_gb)
    if mib not in FARGATE_MEMORY_MIB_BY_CPU_UNITS[units]:
        choices = ", ".join(_fmt(gb) for gb in memory_choices_gb(vcpu))
        raise ValueError(
            f"memory={_fmt(memory_gb)} GB is not offered with vcpu={_fmt(vcpu)}; "
            f"choose one of {choices} GB"
        )
    return units, mib


def _fmt(number: float) -> str:
    return f"{number:g}"
