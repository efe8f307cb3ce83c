#include "output_pool.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#ifdef __linux__
#include <pthread.h>
#endif

#include "memory_stats.h"

namespace dhif::cpu {
namespace {

constexpr size_t kMinPooledBytes = size_t(1) << 20;

// A cached block serves a request this much smaller than itself at most (1/8 wasted), so
// that one large block is not pinned under a series of small outputs.
bool fits(size_t block, size_t request) { return block - request <= block / 8; }

class OutputPool final : public c10::Allocator {
 public:
  OutputPool() {
    const char* setting = std::getenv("DHIF_OUTPUT_POOL");
    enabled_ = setting == nullptr || std::strcmp(setting, "0") != 0;
  }

  c10::DataPtr allocate(size_t bytes) override {
    if (!enabled_ || bytes < kMinPooledBytes) return c10::GetCPUAllocator()->allocate(bytes);
    void* data = take(bytes);
    return {data, data, &OutputPool::give_back, c10::Device(c10::DeviceType::CPU)};
  }

  // Every block of the pool is freed through its DataPtr; nothing asks it for raw blocks.
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  static void give_back(void* data);

  OutputPoolStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {static_cast<int64_t>(in_use_), static_cast<int64_t>(cached_), static_cast<int64_t>(peak_)};
  }

  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!free_.empty()) evict_oldest();
    peak_ = in_use_;
  }

  // A fork while another thread holds the lock would leave the child's copy locked forever.
  void lock() { mutex_.lock(); }
  void unlock() { mutex_.unlock(); }

 private:
  void* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    void* data = nullptr;
    size_t size = bytes;
    const auto cached = free_.lower_bound(bytes);
    if (cached != free_.end() && fits(cached->first, bytes)) {
      size = cached->first;
      data = cached->second.data;
      free_.erase(cached);
      cached_ -= size;
    } else {
      data = c10::alloc_cpu(bytes);
    }
    in_use_ += size;
    peak_ = std::max(peak_, in_use_);
    held_.emplace(data, Held{size, count_allocated(size)});
    return data;
  }

  void put_back(void* data) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto block = held_.find(data);
    const Held held = block->second;
    held_.erase(block);
    in_use_ -= held.size;
    free_.emplace(held.size, Cached{data, ++frees_});
    cached_ += held.size;
    if (held.counted) count_freed(held.size);
    while (cached_ > peak_) evict_oldest();  // blocks of sizes that calls no longer ask for
  }

  void evict_oldest() {
    auto oldest = free_.begin();
    for (auto block = free_.begin(); block != free_.end(); ++block) {
      if (block->second.freed < oldest->second.freed) oldest = block;
    }
    cached_ -= oldest->first;
    c10::free_cpu(oldest->second.data);
    free_.erase(oldest);
  }

  bool enabled_;
  std::mutex mutex_;
  struct Cached {
    void* data;
    uint64_t freed;  // the count of frees when it was freed: the oldest goes first
  };
  std::multimap<size_t, Cached> free_;  // cached blocks by size
  struct Held {
    size_t size;
    bool counted;  // by memory_stats.h
  };
  std::unordered_map<void*, Held> held_;  // blocks held by tensors
  size_t in_use_ = 0, cached_ = 0, peak_ = 0;
  uint64_t frees_ = 0;
};

// Never destroyed: tensors that outlive the module's static destructors still free here.
OutputPool& pool() {
  static OutputPool* const instance = [] {
    auto* created = new OutputPool();
#ifdef __linux__
    pthread_atfork([] { pool().lock(); }, [] { pool().unlock(); }, [] { pool().unlock(); });
#endif
    return created;
  }();
  return *instance;
}

void OutputPool::give_back(void* data) { pool().put_back(data); }

}  // namespace

at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return at::detail::empty_generic(sizes, &pool(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), c10::MemoryFormat::Contiguous);
}

OutputPoolStats output_pool_stats() { return pool().stats(); }

void release_output_pool() { pool().release(); }

}  // namespace dhif::cpu
