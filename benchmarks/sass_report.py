"""Registers, spills and SASS instructions per voxel of the CUDA kernels, and an estimate of
their issue time against their DRAM time on an H100: no GPU needed.

    python benchmarks/sass_report.py [--out sass.md]      # compile and report (about 1 min)
    python benchmarks/sass_report.py --check-spills dhif/_C*.so   # fail on any local memory

The kernels of csrc/cuda/adaptive_filter_kernels.cuh are compiled for sm_80 and sm_90 at
K = 7, with DHIF_SASS_COMMON_PATH so that the grid-stride loop body is the common path
(normalised taps, replicate padding, an interior voxel), with no branch left inside it. One
trip of that loop is one voxel, so its instruction count is instructions per voxel.

Needs nvcc, and cuobjdump and nvdisasm: `pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm`.
"""
import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAPS = 7
ARCHS = ("sm_80", "sm_90")
# (name, C++ type, element bytes E, accumulation bytes A)
DTYPES = (("float32", "float", 4, 4), ("float16", "c10::Half", 2, 4), ("bfloat16", "c10::BFloat16", 2, 4))
INDEX_TYPES = ("int32_t", "int64_t")

# H100 SXM5, the machine the estimate is for.
H100 = {"sms": 132, "issue_per_sm_per_clock": 4, "clock_hz": 1.98e9, "dram_bytes_per_s": 3.35e12}


def bytes_per_voxel(kernel, element, accumulate):
    """DRAM bytes a kernel moves per voxel: each operand once (neighbours come from cache).
    forward: x, K taps, y, inv_norm; backward: g, x, K taps, inv_norm, dx, K dtaps."""
    if kernel == "forward":
        return (TAPS + 2) * element + accumulate
    return (2 * TAPS + 3) * element + accumulate


def issue_time_per_voxel(instructions):
    """One warp instruction per scheduler per clock, 32 voxels per warp, every SM busy."""
    warp_issue_rate = H100["sms"] * H100["issue_per_sm_per_clock"] * H100["clock_hz"]
    return instructions / 32.0 / warp_issue_rate


def tool(name):
    """nvcc from the CUDA toolkit; cuobjdump and nvdisasm from it or from the PyPI wheels."""
    candidates = [shutil.which(name)]
    for base in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if base:
            candidates.append(os.path.join(base, "bin", name))
    purelib = Path(sysconfig.get_paths()["purelib"])
    candidates += [str(p) for p in sorted(purelib.glob(f"nvidia/*/bin/{name}"))]
    found = next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)
    if found is None:
        sys.exit(f"sass_report: {name} not found (nvcc: install the CUDA toolkit or set CUDA_HOME; cuobjdump "
                 "and nvdisasm: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")
    return found


def instantiations():
    """Explicit instantiations of every kernel that the report covers."""
    lines = []
    for _, ctype, _, _ in DTYPES:
        for index in INDEX_TYPES:
            geometry = f"dhif::FilterGeometry<{index}>"
            lines.append(f"template __global__ void dhif::adaptive_filter_forward_kernel<{ctype}, float, {TAPS}, {index}>"
                         f"(const {ctype}*, const {ctype}*, {ctype}*, float*, {geometry}, dhif::VoxelLocator<{index}>, {index});")
            lines.append(f"template __global__ void dhif::adaptive_filter_backward_kernel<{ctype}, float, {TAPS}, "
                         f"{index}>(const {ctype}*, const {ctype}*, const {ctype}*, const float*, {ctype}*, {ctype}*, "
                         f"{geometry}, dhif::VoxelLocator<{index}>, {index}, bool, bool);")
    return "\n".join(lines)


def torch_include():
    import torch.utils.cpp_extension as ext
    return ext.include_paths()[0]


def compile_cubin(arch, workdir):
    source = workdir / "kernels.cu"
    source.write_text('#include <c10/util/Half.h>\n#include <c10/util/BFloat16.h>\n'
                      '#include "cuda/adaptive_filter_kernels.cuh"\n' + instantiations() + "\n")
    cubin = workdir / f"kernels_{arch}.cubin"
    command = [tool("nvcc"), "-cubin", "-O3", "-std=c++17", f"-arch={arch}", "-DDHIF_SASS_COMMON_PATH",
               "-Xptxas", "-v", "-I", str(ROOT / "csrc"), "-I", torch_include(), str(source), "-o", str(cubin)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"sass_report: nvcc failed for {arch}:\n{result.stderr[-3000:]}")
    return cubin, result.stderr


def ptxas_resources(ptxas_log):
    """{mangled name: (registers, spill store bytes, spill load bytes)} from `ptxas -v`."""
    resources, current = {}, None
    for line in ptxas_log.splitlines():
        match = re.search(r"Compiling entry function '(\w+)'", line)
        if match:
            current = match.group(1)
        match = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if match and current:
            resources.setdefault(current, [0, 0, 0])[1:] = [int(match.group(1)), int(match.group(2))]
        match = re.search(r"Used (\d+) registers", line)
        if match and current:
            resources.setdefault(current, [0, 0, 0])[0] = int(match.group(1))
    return {name: tuple(values) for name, values in resources.items()}


def common_path_instructions(sass):
    """Instructions of one trip of the grid-stride loop along its common path.

    The loop is the widest backward branch. Inside it, the only branches left with
    DHIF_SASS_COMMON_PATH are those of IEEE sqrt and division around their slow-path
    subroutines (a CALL, taken for denormal, zero, inf or NaN operands); the walk skips
    those. Any other branch inside the loop is an error."""
    parsed = re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)
    addresses = [int(address, 16) for address, _ in parsed]
    texts = [text.strip() for _, text in parsed]
    where = {address: i for i, address in enumerate(addresses)}

    def branch_target(text):
        match = re.search(r"\bBRA\b\s+(?:`?\(?\.?\w*\)?\s*)?(0x[0-9a-f]+)", text)
        return int(match.group(1), 16) if match else None

    back_edges = [(branch_target(t), i) for i, t in enumerate(texts)
                  if branch_target(t) is not None and branch_target(t) < addresses[i]]
    if not back_edges:
        raise RuntimeError("no grid-stride loop found")
    start, end = min(back_edges, key=lambda edge: edge[0] - addresses[edge[1]])
    i, path = where[start], []
    while True:
        text = texts[i]
        path.append(text)
        if i == end or len(path) > 10000:
            break
        target = branch_target(text)
        if target is None:
            i += 1
        elif target < addresses[i]:
            raise RuntimeError(f"an inner loop on the common path: {text}")
        elif not text.startswith("@"):
            i = where[target]
        elif any(t.startswith("CALL") for t in texts[i + 1:where[target]]):
            i = where[target]  # around a slow-path subroutine
        else:
            raise RuntimeError(f"an unexpected branch on the common path: {text}")
    return path


MANGLED_SCALARS = {"f": "float32", "N3c104HalfE": "float16", "N3c108BFloat16E": "bfloat16"}


def kernel_kind(mangled):
    """(kernel, dtype, index) of a mangled adaptive_filter_*_kernel<scalar_t, float, 7, index_t>."""
    match = re.search(r"_(forward|backward)_kernelI(\w+?)fLi7E([il])E", mangled)
    return match.group(1), MANGLED_SCALARS[match.group(2)], {"i": "int32", "l": "int64"}[match.group(3)]


def report(out):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for arch in ARCHS:
            cubin, ptxas_log = compile_cubin(arch, workdir)
            resources = ptxas_resources(ptxas_log)
            tool("nvdisasm")  # cuobjdump -sass runs it
            listing = subprocess.run([tool("cuobjdump"), "-sass", str(cubin)], capture_output=True, text=True)
            if listing.returncode != 0:
                sys.exit(f"sass_report: cuobjdump -sass failed: {listing.stderr.strip()}")
            sass = listing.stdout
            for block in re.split(r"\n\s*Function : ", sass)[1:]:
                name = block.split()[0]
                kernel, dtype, index = kernel_kind(name)
                registers, spill_stores, spill_loads = resources[name]
                element, accumulate = next((e, a) for label, _, e, a in DTYPES if label == dtype)
                moved = bytes_per_voxel(kernel, element, accumulate)
                if index == "int32":
                    count = len(common_path_instructions(block))
                    ratio = f"{issue_time_per_voxel(count) / (moved / H100['dram_bytes_per_s']):.2f}"
                else:  # 64-bit divisions branch to a 32-bit fast path: no single straight path
                    count, ratio = "-", "-"
                rows.append((arch, kernel, dtype, index, registers, spill_stores + spill_loads, count, moved, ratio))
    rows.sort(key=lambda r: (r[0], r[1] != "forward", [d[0] for d in DTYPES].index(r[2]), r[3]))
    lines = [f"SASS of the CUDA kernels, K = {TAPS}, common path; nvcc {nvcc_version()}, "
             f"{datetime.date.today().isoformat()}",
             "",
             "| arch | kernel | dtype | index | registers | spill bytes | SASS / voxel | DRAM bytes / voxel | "
             "issue / DRAM time (H100) |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    lines += ["", "Estimate: issue time = SASS per voxel / 32 voxels per warp / (132 SMs x 4 schedulers x 1.98 GHz);",
              "DRAM time = bytes per voxel / 3.35 TB/s (H100 SXM5 peak); bytes count each operand once, "
              "inv_norm in float32.",
              "Both are lower bounds, so the ratio says whether instruction issue or memory is the wall, "
              "not the run time. 64-bit kernels run only when an index exceeds int32; their 64-bit divisions "
              "branch, so no straight path is counted."]
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).write_text(text)
    spilled = [r for r in rows if r[5]]
    return 1 if spilled else 0


def nvcc_version():
    output = subprocess.run([tool("nvcc"), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"release ([\d.]+)", output)
    return match.group(1) if match else "unknown"


def check_spills(libraries):
    """Non-zero when any kernel of the built extension uses local memory (spills)."""
    failures = []
    for library in libraries:
        usage = subprocess.run([tool("cuobjdump"), "-res-usage", library], capture_output=True, text=True,
                               check=True).stdout
        functions = re.findall(r"Function (\w+):\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:\d+ LOCAL:(\d+)", usage)
        if not functions:
            sys.exit(f"sass_report: no CUDA kernel found in {library}")
        failures += [(name, stack, local) for name, _, stack, local in functions if int(stack) or int(local)]
        print(f"{library}: {len(functions)} kernels, registers {min(int(f[1]) for f in functions)}-"
              f"{max(int(f[1]) for f in functions)}, {len(failures)} with local memory (spills)")
    for name, stack, local in failures:
        print(f"  spill: {name} STACK:{stack} LOCAL:{local}")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument("--check-spills", nargs="+", metavar="SO", help="check a built extension for spills")
    args = parser.parse_args()
    sys.exit(check_spills(args.check_spills) if args.check_spills else report(args.out))


if __name__ == "__main__":
    main()
