"""`simlm env`: what a bug report needs, for people and (--json) for machines (issue 15, item 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

from simlm_cli import __version__
from simlm_cli.environment import CPU_FLAGS, cpu_info
from tests.conftest import SIMLM, cli_env, run_cli


def test_env_json_reports_versions_cpu_gpus_java_and_what_auto_picks():
    done = run_cli(["env", "--json"])
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["simlm"] == __version__ and info["python"] == sys.version.split()[0]
    for name in ("torch", "transformers", "sentence-transformers", "pyserini"):
        assert info["packages"][name] == metadata.version(name)
    assert info["faiss"]["version"] and isinstance(info["faiss"]["gpu_support"], bool)
    assert isinstance(info["torch"]["cuda_devices"], list)
    assert set(info["cpu"]["flags"]) == set(CPU_FLAGS)
    assert info["java"]["java_version"].split(".")[0].isdigit()
    assert info["java"]["anserini_jar"].startswith("anserini-") and info["java"]["anserini_jar"].endswith(".jar")
    assert info["auto"]["device"] in ("cpu", "cuda:0") and info["auto"]["precision"] in ("fp32", "bf16", "fp16")
    assert info["auto"]["backend"] == "torch" and info["auto"]["SIMLM_BACKEND"] == "torch"  # the suite's setting


def test_env_text_and_simlm_precision():
    """SIMLM_PRECISION and SIMLM_BACKEND change what auto means; the report says so."""
    env = cli_env() | {"SIMLM_PRECISION": "fp32", "SIMLM_BACKEND": "torch"}
    done = subprocess.run([*SIMLM, "env"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["simlm"] == __version__
    for key in ("torch", "transformers", "sentence-transformers", "faiss", "pyserini", "Java", "Anserini jar", "CPU"):
        assert key in lines, done.stdout
    assert "avx512_bf16=" in lines["CPU flags"] and "amx_bf16=" in lines["CPU flags"]
    if "cpu" in lines["auto picks"]:
        assert (
            lines["auto picks"]
            == "device cpu, precision fp32, backend torch (SIMLM_PRECISION=fp32, SIMLM_BACKEND=torch)"
        )


def test_env_neither_imports_pyserini_nor_starts_a_jvm():
    code = (
        "import sys; from simlm_cli.environment import collect; collect(); "
        "assert 'pyserini' not in sys.modules and 'jnius' not in sys.modules, sorted(sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert done.returncode == 0, done.stderr


def test_cpu_flags_come_from_cpuinfo(tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n")
    info = cpu_info(str(fake))
    assert info["model"] == "Some CPU"
    assert info["flags"]["amx_bf16"] and info["flags"]["avx2"] and not info["flags"]["avx512_bf16"]
