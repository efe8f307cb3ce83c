#include "block_cache.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#ifdef __linux__
#include <pthread.h>
#include <sys/mman.h>
#endif

namespace dhif::cpu {
namespace {

// Smaller blocks come from glibc's heap, which reuses them already.
constexpr size_t kMinCachedBytes = size_t(1) << 20;

size_t cap_from_env() {
  const char* value = std::getenv("DHIF_CPU_CACHE_MB");
  const long long megabytes = value ? std::atoll(value) : -1;
  return megabytes >= 0 ? static_cast<size_t>(megabytes) << 20 : SIZE_MAX;
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

class BlockCache final : public c10::Allocator {
 public:
  explicit BlockCache(c10::Allocator* system) : system_(system) {}

  c10::DataPtr allocate(size_t bytes) override {
    if (bytes < kMinCachedBytes) return system_->allocate(bytes);
    void* data = take(bytes);
    return {data, data, &BlockCache::give_back, c10::Device(c10::DeviceType::CPU)};
  }

  // raw_deallocate gets blocks of both kinds.
  c10::DeleterFnPtr raw_deleter() const override { return &BlockCache::give_back; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }

  static void give_back(void* data);

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  size_t peak_in_use() {
    std::lock_guard<std::mutex> lock(mutex_);
    return peak_in_use_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_in_use_ = in_use_;
  }

  void release() {
    std::multimap<size_t, void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      cached_ = 0;
    }
    for (const auto& block : blocks) system_->raw_deallocate(block.second);
  }

  // A fork while another thread holds the lock would leave the child's copy locked forever.
  void lock_for_fork() { mutex_.lock(); }
  void unlock_after_fork() { mutex_.unlock(); }

 private:
  void* take(size_t bytes) {
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto fit = free_.lower_bound(bytes);
      if (fit != free_.end() && fit->first - bytes <= bytes / 8) {
        void* data = fit->second;
        const size_t size = fit->first;
        free_.erase(fit);
        cached_ -= size;
        mark_in_use(data, size);
        return data;
      }
      // Nothing fits: hold no more than the most in use at once (or the cap), largest first.
      const size_t bound = std::max(peak_in_use_, in_use_ + bytes);
      while (!free_.empty() && (in_use_ + cached_ + bytes > bound || cached_ > cap_)) {
        const auto largest = std::prev(free_.end());
        cached_ -= largest->first;
        evicted.push_back(largest->second);
        free_.erase(largest);
      }
    }
    for (void* block : evicted) system_->raw_deallocate(block);
    void* data = system_->raw_allocate(bytes);
    advise_huge_pages(data, bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    mark_in_use(data, bytes);
    return data;
  }

  void mark_in_use(void* data, size_t size) {
    in_use_blocks_.emplace(data, size);
    in_use_ += size;
    peak_in_use_ = std::max(peak_in_use_, in_use_);
  }

  // False for a block that is not one of the cache's (a small one).
  bool keep(void* data) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto block = in_use_blocks_.find(data);
    if (block == in_use_blocks_.end()) return false;
    const size_t size = block->second;
    in_use_blocks_.erase(block);
    in_use_ -= size;
    if (cached_ + size > cap_) return false;
    free_.emplace(size, data);
    cached_ += size;
    return true;
  }

  c10::Allocator* const system_;
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;                // size -> freed block
  std::unordered_map<void*, size_t> in_use_blocks_;  // large blocks handed out
  size_t cached_ = 0, in_use_ = 0, peak_in_use_ = 0;
  const size_t cap_ = cap_from_env();
};

// Never destroyed: tensors that outlive the module's static destructors still give back.
BlockCache*& instance() {
  static BlockCache* cache = nullptr;
  return cache;
}

void BlockCache::give_back(void* data) {
  BlockCache* cache = instance();
  if (!cache->keep(data)) cache->system_->raw_deallocate(data);
}

}  // namespace

bool install_block_cache() {
  static const bool installed = [] {
    const char* setting = std::getenv("DHIF_CPU_CACHE");
    if (setting && std::strcmp(setting, "0") == 0) return false;
    instance() = new BlockCache(c10::GetCPUAllocator());
#ifdef __linux__
    pthread_atfork([] { instance()->lock_for_fork(); }, [] { instance()->unlock_after_fork(); },
                   [] { instance()->unlock_after_fork(); });
#endif
    // Above the default allocator's priority (0), so that later registrations at that
    // priority do not replace it.
    c10::SetCPUAllocator(instance(), /*priority=*/1);
    return true;
  }();
  return installed;
}

int64_t block_cache_bytes() { return instance() ? static_cast<int64_t>(instance()->cached_bytes()) : 0; }

int64_t block_cache_peak_in_use() { return instance() ? static_cast<int64_t>(instance()->peak_in_use()) : 0; }

void reset_block_cache_peak() {
  if (instance()) instance()->reset_peak();
}

void release_block_cache() {
  if (instance()) instance()->release();
}

}  // namespace dhif::cpu
