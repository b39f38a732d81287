"""This machine and what fits on it: hardware profile, memory estimates, resource plans.

    profile = detect_hardware()                    # CPU, RAM, GPUs, llama.cpp build
    facts = read_model_facts(path)                 # llamarun.gguf: sizes from the GGUF header
    plan = plan_resources(facts, profile, ResourceRequest.from_settings(settings))
    check_fits(plan, force=False)                  # InsufficientMemoryError with the numbers
    context = Context(model, plan.context_options())
"""

from .cpu import CpuInfo, detect_cpu, parse_cpuinfo
from .estimate import MemoryEstimate, context_cells, estimate_memory, format_bytes
from .gpu import GpuInfo, detect_gpus, parse_nvidia_smi
from .plan import ResourcePlan, ResourceRequest, check_fits, plan_resources
from .profile import BuildDevice, BuildInfo, HardwareProfile, detect_build, detect_hardware, parse_system_info
from .ram import MemoryInfo, detect_memory, parse_meminfo

__all__ = [
    "BuildDevice",
    "BuildInfo",
    "CpuInfo",
    "GpuInfo",
    "HardwareProfile",
    "MemoryEstimate",
    "MemoryInfo",
    "ResourcePlan",
    "ResourceRequest",
    "check_fits",
    "context_cells",
    "detect_build",
    "detect_cpu",
    "detect_gpus",
    "detect_hardware",
    "detect_memory",
    "estimate_memory",
    "format_bytes",
    "parse_cpuinfo",
    "parse_meminfo",
    "parse_nvidia_smi",
    "parse_system_info",
    "plan_resources",
]
