"""benchmarks/bench_cpu_precision.py on the tiny model: every case is timed and reported against fp32."""

import pytest

from hero_gym.benchmarks import bench_cpu_precision


def test_reports_every_case_with_its_ratio_to_fp32(tmp_path, monkeypatch):
    monkeypatch.setenv("HERO_GYM_CPU_BF16", "0")
    out = tmp_path / "r.md"
    report = bench_cpu_precision.main(["--model", "tiny", "--prompt", "16", "--decode", "2", "--train-tokens", "8",
                                       "--repeats", "2", "--out", str(out)])
    assert out.read_text() == report
    rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [(r[0][2:], r[1]) for r in rows] == [
        ("prefill", "fp32"), ("prefill", "bf16 weights"), ("prefill", "bf16 autocast"),
        ("decode", "fp32"), ("decode", "bf16 weights"), ("decode", "bf16 autocast"),
        ("train", "fp32"), ("train", "bf16 autocast")]
    assert all(r[4] == "1.00x |" for r in rows if r[1] == "fp32")
    assert "native bf16 (`cpu_has_native_bf16`): **False**" in report


def test_bad_sizes_are_refused():
    with pytest.raises(SystemExit):
        bench_cpu_precision.main(["--model", "tiny", "--repeats", "0"])
