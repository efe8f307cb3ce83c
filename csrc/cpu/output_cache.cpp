#include "output_cache.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/CPUAllocator.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace dhif::cpu {
namespace {

// Smaller outputs come from glibc's heap, which reuses them already.
constexpr size_t kMinCachedBytes = size_t(1) << 20;

size_t cap_from_env() {
  const char* value = std::getenv("DHIF_CPU_OUTPUT_CACHE_MB");
  const long long megabytes = value ? std::atoll(value) : 1024;
  return megabytes > 0 ? static_cast<size_t>(megabytes) << 20 : 0;
}

// Asks for transparent huge pages before the first write: 2 MiB per page fault, not 4 KiB.
void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t(2) << 20;
  const uintptr_t start = reinterpret_cast<uintptr_t>(data), end = start + bytes;
  const uintptr_t first = (start + kHugePage - 1) & ~(kHugePage - 1), last = end & ~(kHugePage - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
}

class OutputCache {
 public:
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto it = free_.find(bytes);
      if (it != free_.end()) {
        void* data = it->second;
        free_.erase(it);
        cached_bytes_ -= bytes;
        return data;
      }
    }
    void* data = c10::GetCPUAllocator()->raw_allocate(bytes);
    advise_huge_pages(data, bytes);
    return data;
  }

  void give_back(void* data, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + bytes <= cap_) {
        free_.emplace(bytes, data);
        cached_bytes_ += bytes;
        return;
      }
    }
    c10::GetCPUAllocator()->raw_deallocate(data);
  }

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_bytes_;
  }

  void release() {
    std::multimap<size_t, void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      cached_bytes_ = 0;
    }
    for (const auto& block : blocks) c10::GetCPUAllocator()->raw_deallocate(block.second);
  }

  size_t cap() const { return cap_; }

 private:
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  size_t cached_bytes_ = 0;
  const size_t cap_ = cap_from_env();
};

// Never destroyed: tensors that outlive the module's static destructors still give back.
OutputCache& cache() {
  static OutputCache* instance = new OutputCache();
  return *instance;
}

}  // namespace

at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const size_t bytes = static_cast<size_t>(c10::multiply_integers(sizes)) * options.dtype().itemsize();
  if (bytes < kMinCachedBytes || cache().cap() == 0) return at::empty(sizes, options);
  void* data = cache().take(bytes);
  return at::from_blob(data, sizes, [bytes](void* block) { cache().give_back(block, bytes); }, options);
}

int64_t output_cache_bytes() { return static_cast<int64_t>(cache().cached_bytes()); }

void release_output_cache() { cache().release(); }

}  // namespace dhif::cpu
