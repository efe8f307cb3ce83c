#include "memory_bindings.h"

#include "memory_stats.h"
#include "output_pool.h"

namespace dhif::cpu {

void bind_memory(py::module& parent) {
  py::module memory = parent.def_submodule("memory", "CPU memory statistics and the op's output pool.");
  memory.def("install_stats", &install_memory_stats,
             "Counts the bytes of torch's CPU tensors in blocks of 1 MiB and more from now on, by wrapping "
             "torch's CPU allocator for the rest of the process (once).");
  memory.def("stats_installed", &memory_stats_installed, "Whether install_stats() was called.");
  memory.def("in_use", &memory_in_use, "Bytes counted in use now.");
  memory.def("peak", &memory_peak, "The most bytes counted in use at once since the reset.");
  memory.def("reset_peak", &reset_memory_peak, "Makes the peak the bytes in use now.");
  memory.def(
      "pool_stats",
      [] {
        const OutputPoolStats stats = output_pool_stats();
        py::dict result;
        result["in_use"] = stats.in_use;
        result["cached"] = stats.cached;
        result["peak"] = stats.peak;
        return result;
      },
      "Bytes of the op's output pool: held by tensors, cached for reuse, and the most held at once.");
  memory.def("release_pool", &release_output_pool, "Gives the pool's cached blocks back to the system.");
}

}  // namespace dhif::cpu
