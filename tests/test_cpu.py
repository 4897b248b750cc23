"""CPU features recorded by `edgeag benchmark` (edgeag.edge.cpu), from /proc/cpuinfo text."""

from edgeag.edge.cpu import cpu_features, parse_cpu_features

PI4 = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n"
PI5 = ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
       "asimdrdm lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n")
AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx f16c fma avx2 bmi2\n"
VNNI = "processor\t: 0\nflags\t\t: fpu avx2 fma avx512f avx512bw avx512_vnni\n"


def test_arm_dot_product_separates_pi4_from_pi5():
    pi4, pi5 = parse_cpu_features(PI4, "aarch64"), parse_cpu_features(PI5, "aarch64")
    assert pi4["features"]["asimd"] and not pi4["features"]["asimddp"] and pi4["int8_dot_product"] is False
    assert pi5["features"]["asimddp"] and pi5["int8_dot_product"] is True
    assert "NEON dot product" in pi5["summary"] and pi4["summary"].endswith("int8 dot product: no")


def test_x86_vnni_and_avx2_only():
    avx2, vnni = parse_cpu_features(AVX2_ONLY, "x86_64"), parse_cpu_features(VNNI, "x86_64")
    assert avx2["features"]["avx2"] and not avx2["features"]["avx512_vnni"] and avx2["int8_dot_product"] is False
    assert vnni["features"]["avx512_vnni"] and vnni["int8_dot_product"] is True
    assert "AVX-512 VNNI" in vnni["summary"]


def test_unknown_without_cpuinfo():
    r = parse_cpu_features("", "x86_64")
    assert r["features"] is None and r["int8_dot_product"] is None


def test_this_machine_has_a_record():
    r = cpu_features()
    assert set(r) == {"arch", "features", "int8_dot_product", "summary"}
