"""The CPU features that decide how fast the models run here (read from ``/proc/cpuinfo``; Linux only).

int8 inference is fast where the CPU has int8 dot-product instructions: AVX-512 VNNI or AVX-VNNI on x86,
the dot-product extension (``asimddp``, ARMv8.2: Cortex-A76 in the Raspberry Pi 5; not the Pi 4's
Cortex-A72) on ARM. Without them an int8 model can be slower than the same model in float32 (AVX2-only x86:
see README, Benchmarks). ``edgeag benchmark`` records these features with every result.
"""

from __future__ import annotations

import platform
from functools import lru_cache

# Features reported, in this order, per architecture: the /proc/cpuinfo spelling -> what it is.
X86_FEATURES = {
    "avx2": "AVX2",
    "fma": "FMA",
    "f16c": "F16C (float16 conversion)",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI (int8 dot product)",
    "avx_vnni": "AVX-VNNI (int8 dot product, 256-bit)",
    "avx512_bf16": "AVX-512 BF16",
}
ARM_FEATURES = {
    "asimd": "NEON",
    "asimddp": "NEON dot product (int8)",
    "asimdhp": "NEON float16 arithmetic",
    "i8mm": "int8 matrix multiply",
    "sve": "SVE",
    "atomics": "LSE atomics",
}
_DOT_PRODUCT = ("avx512_vnni", "avx_vnni", "asimddp")


def _flags(cpuinfo: str) -> set[str]:
    """The first processor's feature words (x86 ``flags``, ARM ``Features``)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def parse_cpu_features(cpuinfo: str, machine: str) -> dict:
    """{arch, features {name: bool}, int8_dot_product, summary} from the text of /proc/cpuinfo."""
    arm = machine.lower() in ("aarch64", "arm64") or machine.lower().startswith("arm")
    known = ARM_FEATURES if arm else X86_FEATURES
    flags = _flags(cpuinfo)
    if not flags:
        return {"arch": machine, "features": None, "int8_dot_product": None, "summary": "features unknown"}
    features = {name: name in flags for name in known}
    dot = [known[n].split(" (")[0] for n in _DOT_PRODUCT if features.get(n)]
    present = [n for n, ok in features.items() if ok]
    summary = (" ".join(present) or "none of " + " ".join(known)) + "; int8 dot product: " + \
        (", ".join(dot) if dot else "no")
    return {"arch": machine, "features": features, "int8_dot_product": bool(dot), "summary": summary}


@lru_cache(maxsize=1)
def cpu_features() -> dict:
    """This machine's features (``features`` None where /proc/cpuinfo is missing, e.g. macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        text = ""
    return parse_cpu_features(text, platform.machine())
