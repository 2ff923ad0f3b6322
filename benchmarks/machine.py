"""What the benchmark scripts record beside every figure: the machine it was measured on."""
from __future__ import annotations

import platform
from pathlib import Path


# The vector extensions that change a figure: two machines both called "AMD EPYC" differed 1.7x
# in the demo's time (AVX2 only against AVX-512 with BF16), and bf16 training needs the last two.
VECTOR_FLAGS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"),
                ("avx2", "AVX2"))


def cpu_model() -> str:
    """The CPU's model name with its widest vector extensions (Linux: /proc/cpuinfo), else what
    platform knows, e.g. ``AMD EPYC (AVX2)``."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    present = [label for flag, label in VECTOR_FLAGS if flag in flags]
    # AVX-512 implies AVX2 on every x86 CPU made: name only the widest.
    if "AVX-512" in present:
        present.remove("AVX2")
    return f"{name} ({', '.join(present)})" if present else name
