"""What the benchmark scripts record beside every figure: the machine it was measured on."""
from __future__ import annotations

import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "DeepRadScore") not in sys.path:
    sys.path.append(str(ROOT / "DeepRadScore"))

from DeepRadScoreLib.resources import cpu_flags  # noqa: E402  (the engine's one reader of the flags)

# The vector extensions that change a figure: two machines both called "AMD EPYC" differed 1.7x
# in the demo's time (AVX2 only against AVX-512 with BF16), and bf16 training needs the first two.
VECTOR_FLAGS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"),
                ("avx2", "AVX2"))


def cpu_model() -> str:
    """The CPU's model name with its vector extensions (Linux: /proc/cpuinfo), else what platform
    knows, e.g. ``AMD EPYC (AVX2)`` or ``Intel(R) Xeon(R) Processor (AMX-BF16, AVX-512 BF16, AVX-512)``."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.machine())
    flags = cpu_flags()
    # AVX-512 implies AVX2 on every x86 CPU made: name AVX2 only where it is the widest.
    present = [label for flag, label in VECTOR_FLAGS
               if flag in flags and not (flag == "avx2" and "avx512f" in flags)]
    return f"{name} ({', '.join(present)})" if present else name
