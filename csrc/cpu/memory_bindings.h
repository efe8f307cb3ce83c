// dhif._C.memory: the CPU memory statistics (memory_stats.h) and the op's output pool
// (output_pool.h), for Python.
#pragma once

#include <torch/extension.h>

namespace dhif::cpu {

void bind_memory(py::module& parent);

}  // namespace dhif::cpu
