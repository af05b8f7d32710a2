"""Results as JSON (everything measured) and a markdown summary (the tables a reader wants)."""
from __future__ import annotations

import json
import os
import platform
import re
import socket
import time

import numpy as np

from zfraw import backend

from . import torch_peer


def machine_info() -> dict:
    """What the numbers were measured on, and how busy the machine was."""
    info = {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch_peer.version(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "loadavg_start": os.getloadavg()}
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    info["blas"] = blas_info()
    if backend.cuda_available():
        cp = backend.cupy_module()
        info["gpu"] = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
        info["cupy"] = cp.__version__
    return info


def blas_info() -> list[dict]:
    """The BLAS libraries loaded in this process and the kernels each runs (threadpoolctl, when
    importable: OpenBLAS's 'architecture' is the core type whose kernels it picked, which
    OPENBLAS_CORETYPE can force), with the OpenBLAS variables of the environment."""
    out = []
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = list
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            out.append({k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                                 "num_threads")})
    env = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    return [{"environment": env}] + out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_name(info: dict) -> str:
    """File stem for the results: 'cpu-2core-<host>' or 'gpu-<model>-<host>'."""
    host = re.sub(r"[^a-z0-9]+", "-", info["hostname"].lower()).strip("-")
    if "gpu" in info:
        gpu = re.sub(r"[^a-z0-9]+", "-", info["gpu"].lower()).strip("-")
        return f"gpu-{gpu}-{host}"
    return f"cpu-{info['cpus']}core-{host}"


def write(results: dict, out_dir: str, stem: str) -> tuple[str, str]:
    """Write <stem>.json and <stem>.md under out_dir; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path, md_path = (os.path.join(out_dir, f"{stem}.{ext}") for ext in ("json", "md"))
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1, default=float)
    with open(md_path, "w") as f:
        f.write(markdown(results))
    return json_path, md_path


def _columns(rows):
    seen = []
    for r in rows:
        if r["impl"] not in seen:
            seen.append(r["impl"])
    return seen


def _group(rows, keys):
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), {})[r["impl"]] = r
    return groups


def _table(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out) + "\n"


def _blas_text(m: dict) -> str:
    libs = [b for b in m.get("blas", []) if "internal_api" in b]
    return ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']} kernels, "
                     f"{b['num_threads']} threads)" for b in libs) or "not recorded"


def markdown(results: dict) -> str:
    m, c = results["machine"], results["ceilings"]
    parts = [f"# zfraw benchmarks: {results['name']}\n",
             f"{m['cpu_model']}, {m['cpus']} CPUs" + (f", GPU {m['gpu']}" if "gpu" in m else "")
             + f"; numpy {m['numpy']}, numba {m['numba']}, torch {m['torch']}; "
             f"{m['date_utc']} UTC; BLAS {_blas_text(m)}; "
             f"load average at start {m['loadavg_start'][0]:.2f}, "
             f"at end {m.get('loadavg_end', [float('nan')])[0]:.2f}"
             f"{' (quick mode)' if results['quick'] else ''}.\n",
             "Times are medians of interleaved runs after warm-up. The ceiling is measured in "
             "the same run: " + "; ".join(
                 f"{dev}: float32 matmul {v['matmul_gflops']:.0f} GFLOP/s, copy "
                 f"{v['copy_gbs']:.1f} GB/s" for dev, v in c.items()) + ".\n"]
    if results.get("steps"):
        rows = results["steps"]
        cols = _columns(rows)

        def step_cell(r):
            cell = (f"{r['median_ms']:.0f} ms, {r['images_per_s']:.1f} img/s "
                    f"(x{r['speedup_vs_numpy']:.2f})")
            if "ratio_to_torch" in r:
                q = r["ratio_to_torch"]
                cell += f"; {q['median']:.2f} [{q['min']:.2f}, {q['max']:.2f}] of torch's time"
            if r.get("peak_memory"):
                cell += f"; {r['peak_memory']['step_mib']:.0f} MiB"
            return cell

        lines = [[label] + [step_cell(g[i]) if i in g else "-" for i in cols]
                 for (label,), g in _group(rows, ("label",)).items()]
        parts += ["## Training step (forward + loss + backward + SGD)\n",
                  "Median step time over every run of every round, images/s, speed-up over the "
                  "NumPy reference; then the time as a fraction of PyTorch's: the median of the "
                  "per-round ratios [min, max over the rounds]; then the memory the steps added "
                  "to the built net (peak resident memory, one child process per column).\n",
                  _table(["net, batch"] + cols, lines)]
    if results.get("primitives"):
        rows = results["primitives"]
        cols = _columns(rows)
        lines = [[op, case] + [
            f"{g[i]['median_ms']:.2f} ms, {g[i]['gbs']:.1f} GB/s "
            f"({100 * g[i]['frac_copy_ceiling']:.0f}%), x{g[i]['speedup_vs_numpy']:.1f}"
            if i in g else "-" for i in cols]
            for (op, case), g in _group(rows, ("op", "case")).items()]
        parts += ["## Primitives (zf shapes)\n",
                  "Per impl: median time, GB/s of the bytes the primitive must move (% of the "
                  "copy ceiling), speed-up over the NumPy reference.\n",
                  _table(["primitive", "layer"] + cols, lines)]
    for table in results.get("layer_tables", []):
        rows = table["rows"]
        cols = _columns(rows)

        def cell(r):
            rate = (f"{r['gflops']:.1f} GFLOP/s ({100 * r['frac_matmul_ceiling']:.0f}%)"
                    if "gflops" in r else
                    f"{r['gbs']:.1f} GB/s ({100 * r['frac_copy_ceiling']:.0f}%)")
            return f"{r['median_ms']:.2f} ms, {rate}, x{r['speedup_vs_numpy']:.1f}"

        lines = [[layer, p] + [cell(g[i]) if i in g else "-" for i in cols]
                 for (layer, p), g in _group(rows, ("layer", "pass")).items()]
        width = "" if table["width"] == 1 else f" at width {table['width']:g}"
        parts += [f"## Layers ({table['arch']}{width}, batch {table['batch']})\n",
                  "Conv/fc: GFLOP/s (% of the matmul ceiling); others: GB/s of the layer's input "
                  "and output (% of the copy ceiling); x: speed-up over the NumPy reference.\n",
                  _table(["layer", "pass"] + cols, lines)]
    if results.get("occlusion"):
        rows = results["occlusion"]
        keys = [k for k in rows[0] if k not in ("arch",)]
        for r in rows[1:]:
            keys += [k for k in r if k not in keys and k != "arch"]
        lines = [[r["arch"]] + [(f"{r[k]:.4g}" if isinstance(r.get(k), float) else
                                 str(r.get(k, "-"))) for k in keys] for r in rows]
        parts += ["## Occlusion sweeps (one image, Captum's sliding squares)\n",
                  "Seconds per sweep (median); ratios are times of the other method over "
                  "zfraw's incremental sweep; the max differences check that all agree.\n",
                  _table(["net"] + keys, lines)]
    return "\n".join(parts)
