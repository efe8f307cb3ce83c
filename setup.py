"""Builds dhif._C: the C++ kernels always, the CUDA kernels when torch is a CUDA build and
a CUDA toolkit is found (a GPU is not needed to compile them).

Environment overrides:
  DHIF_CPU_ONLY=1         never compile CUDA
  DHIF_FORCE_CUDA=1       compile CUDA or fail loudly if that is impossible
  DHIF_CPU_BASELINE_ONLY=1  build the CPU kernels for the baseline instruction set only
  TORCH_CUDA_ARCH_LIST    GPU architectures (default when no GPU is visible: 8.0;9.0+PTX)
  CUDA_HOME               the toolkit to use

Install with `pip install --no-build-isolation .` so that the extension is built against
the torch you already have (see README).
"""
import os
import platform
import shutil
import sys

from setuptools import find_packages, setup

DEFAULT_ARCH_LIST = "8.0;9.0+PTX"


def _flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _is_toolkit(path):
    return bool(path) and os.path.isfile(os.path.join(path, "bin", "nvcc")) and os.path.isfile(
        os.path.join(path, "include", "cuda_runtime.h"))


def find_cuda_home():
    """A directory holding both bin/nvcc and include/cuda_runtime.h, or None.

    /usr/local/bin/nvcc can be a wrapper script, from which torch would guess
    CUDA_HOME=/usr/local and then fail to link cudart, so the real toolkit is searched for.
    """
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    return next((c for c in candidates if _is_toolkit(c)), None)


# torch.utils.cpp_extension caches CUDA_HOME at import, so it is set first.
CUDA_HOME = find_cuda_home()
if CUDA_HOME:
    os.environ["CUDA_HOME"] = CUDA_HOME

try:
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
except ImportError:
    sys.exit("dhif needs torch to build its kernels: install torch first, then "
             "`pip install --no-build-isolation .` (see README).")


# The oldest torch that dhif builds and is tested against (.ci/run builds the sdist with it).
TORCH_FLOOR = "2.11"
TORCH_BUILT = torch.__version__.split("+")[0]
if tuple(int(part) for part in TORCH_BUILT.split(".")[:2]) < tuple(int(part) for part in TORCH_FLOOR.split(".")):
    sys.exit(f"dhif needs torch >= {TORCH_FLOOR} to build; torch {torch.__version__} is installed.")
# A compiled extension works only with the torch it was built against: the wheel says so,
# as extension packages that ship wheels do.
REQUIREMENTS = [f"torch=={TORCH_BUILT}", "numpy", "ninja", "pybind11", "scipy", "h5py", "pillow", "tqdm", "rasterio>=1.4",
                "matplotlib"]


def want_cuda():
    if _flag("DHIF_CPU_ONLY"):
        return False
    possible = torch.version.cuda is not None and CUDA_HOME is not None
    if _flag("DHIF_FORCE_CUDA") and not possible:
        sys.exit(f"DHIF_FORCE_CUDA=1 but CUDA cannot be built: torch.version.cuda={torch.version.cuda}, "
                 f"CUDA toolkit={CUDA_HOME} (need bin/nvcc and include/cuda_runtime.h; set CUDA_HOME).")
    return possible


# The CPU kernels are compiled once per instruction set, each copy in its own namespace,
# and the best one the CPU supports is chosen at run time (csrc/cpu/adaptive_filter_cpu.cpp),
# as ATen builds its own kernels. The flags are ATen's for the same capabilities.
CPU_KERNEL_SOURCE = os.path.join("csrc", "cpu", "adaptive_filter_cpu_kernel.cpp")
CPU_CAPABILITY_FLAGS = {
    "DEFAULT": [],
    "AVX2": ["-mavx2", "-mfma", "-mf16c"],
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c"],
}


def cpu_capabilities():
    x86 = platform.machine().lower() in {"x86_64", "amd64"}
    return list(CPU_CAPABILITY_FLAGS) if x86 and not _flag("DHIF_CPU_BASELINE_ONLY") else ["DEFAULT"]


class BuildWithCpuCapabilities(BuildExtension):
    """setuptools gives every source of an extension the same flags, so the per-capability
    copies of the CPU kernels are compiled here, each into its own folder, and linked in
    after the baseline objects."""

    def build_extension(self, ext):
        flags = ext.extra_compile_args["cxx"] if isinstance(ext.extra_compile_args, dict) else ext.extra_compile_args
        for capability in cpu_capabilities():
            ext.extra_objects += self.compiler.compile(
                [CPU_KERNEL_SOURCE], output_dir=os.path.join(self.build_temp, "cpu_" + capability.lower()),
                include_dirs=ext.include_dirs, depends=ext.depends,
                # ATen's vector headers carry `#pragma unroll`, which GCC does not know, and
                # GCC 12 warns about its own AVX-512 headers' undefined-vector idiom.
                extra_postargs=flags + CPU_CAPABILITY_FLAGS[capability] +
                ["-Wno-unknown-pragmas", "-Wno-maybe-uninitialized"] +
                [f"-DCPU_CAPABILITY={capability}", f"-DCPU_CAPABILITY_{capability}"])
        super().build_extension(ext)


def announce(message):
    """A line the installing user sees: pip hides a build's output unless -v, so it also
    goes to the terminal itself when there is one."""
    print(message, flush=True)
    try:
        with open("/dev/tty", "w") as terminal:
            terminal.write(message + "\n")
    except OSError:  # no terminal (CI, a batch job)
        pass


def extension():
    here = os.path.dirname(os.path.abspath(__file__))
    sources = [os.path.join("csrc", "adaptive_filter.cpp"), os.path.join("csrc", "cpu", "adaptive_filter_cpu.cpp"),
               os.path.join("csrc", "cpu", "memory_stats.cpp"), os.path.join("csrc", "cpu", "output_pool.cpp"),
               os.path.join("csrc", "cpu", "memory_bindings.cpp")]
    depends = [CPU_KERNEL_SOURCE, os.path.join("csrc", "cpu", "adaptive_filter_cpu_kernel.h"),
               os.path.join("csrc", "cpu", "memory_stats.h"), os.path.join("csrc", "cpu", "output_pool.h"),
               os.path.join("csrc", "cpu", "memory_bindings.h"),
               os.path.join("csrc", "adaptive_filter.h"), os.path.join("csrc", "adaptive_filter_checks.h")]
    # -g0 last: setuptools adds -g, which makes the module ten times larger for nothing.
    # -fno-math-errno -fno-trapping-math: sqrt need not set errno nor FP exception flags
    # (results are the same IEEE values, NaN and inf included), so the voxel loops vectorise.
    cxx = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-g0", f'-DDHIF_TORCH_VERSION="{torch.__version__}"']
    cxx += [f"-DDHIF_CPU_KERNELS_{capability}" for capability in cpu_capabilities() if capability != "DEFAULT"]
    link = ["-fopenmp"]
    if not want_cuda():
        announce(f"dhif: compiling the C++ kernels for torch {torch.__version__} "
                 f"({', '.join(cpu_capabilities())}; about a minute on 2 cores)")
        return CppExtension("dhif._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=link,
                            include_dirs=[os.path.join(here, "csrc")], depends=depends)
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        # torch's arch detection crashes when no GPU is visible and no list is given.
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCH_LIST
    arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST", "detected")
    announce(f"dhif: compiling the C++ and CUDA kernels for torch {torch.__version__} (CUDA {torch.version.cuda}, "
             f"GPU architectures {arch_list}, toolkit {CUDA_HOME}; about 2 minutes on 2 cores; DHIF_CPU_ONLY=1 "
             "skips CUDA)")
    defines = [f'-DDHIF_CUDA_VERSION="{torch.version.cuda}"', f'-DDHIF_CUDA_ARCH_LIST="{arch_list}"']
    sources.append(os.path.join("csrc", "cuda", "adaptive_filter_cuda.cu"))
    return CUDAExtension("dhif._C", sources, include_dirs=[os.path.join(here, "csrc")],
                         extra_compile_args={"cxx": cxx + defines, "nvcc": ["-O3", "-lineinfo"]},
                         extra_link_args=link, depends=depends)


setup(
    install_requires=REQUIREMENTS,
    packages=find_packages(include=["dhif", "dhif.*"]),
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildWithCpuCapabilities.with_options(use_ninja=True)},
)
