#include "memory_stats.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <unordered_map>

#ifdef __linux__
#include <pthread.h>
#endif

namespace dhif::cpu {
namespace {

constexpr size_t kMinCountedBytes = size_t(1) << 20;

class Counter {
 public:
  void add(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    in_use_ += bytes;
    peak_ = std::max(peak_, in_use_);
  }

  void subtract(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    in_use_ -= bytes;
  }

  int64_t in_use() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int64_t>(in_use_);
  }

  int64_t peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int64_t>(peak_);
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_ = in_use_;
  }

  // A fork while another thread holds the lock would leave the child's copy locked forever.
  void lock() { mutex_.lock(); }
  void unlock() { mutex_.unlock(); }

 private:
  std::mutex mutex_;
  size_t in_use_ = 0, peak_ = 0;
};

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* system) : system_(system) {}

  c10::DataPtr allocate(size_t bytes) override {
    if (bytes < kMinCountedBytes) return system_->allocate(bytes);
    void* data = system_->raw_allocate(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      sizes_.emplace(data, bytes);
    }
    counter_.add(bytes);
    return {data, data, &CountingAllocator::deallocate, c10::Device(c10::DeviceType::CPU)};
  }

  // raw_deallocate gets blocks of both sizes.
  c10::DeleterFnPtr raw_deleter() const override { return &CountingAllocator::deallocate; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    system_->copy_data(dest, src, count);
  }

  static void deallocate(void* data);

  Counter& counter() { return counter_; }

  void lock() {
    mutex_.lock();
    counter_.lock();
  }
  void unlock() {
    counter_.unlock();
    mutex_.unlock();
  }

 private:
  void forget(void* data) {
    size_t bytes = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto block = sizes_.find(data);
      if (block == sizes_.end()) return;  // a small block, or one from before the install
      bytes = block->second;
      sizes_.erase(block);
    }
    counter_.subtract(bytes);
  }

  c10::Allocator* const system_;
  std::mutex mutex_;
  std::unordered_map<void*, size_t> sizes_;  // counted blocks in use
  Counter counter_;
};

// Never destroyed: tensors that outlive the module's static destructors still free here.
std::atomic<CountingAllocator*> instance{nullptr};

void CountingAllocator::deallocate(void* data) {
  CountingAllocator* const counting = instance.load();
  counting->forget(data);
  counting->system_->raw_deallocate(data);
}

}  // namespace

void install_memory_stats() {
  static const bool installed = [] {
    instance.store(new CountingAllocator(c10::GetCPUAllocator()));
#ifdef __linux__
    pthread_atfork([] { instance.load()->lock(); }, [] { instance.load()->unlock(); },
                   [] { instance.load()->unlock(); });
#endif
    // Above the default allocator's priority (0), so that later registrations at that
    // priority do not replace it.
    c10::SetCPUAllocator(instance.load(), /*priority=*/1);
    return true;
  }();
  (void)installed;
}

bool memory_stats_installed() { return instance.load() != nullptr; }

int64_t memory_in_use() { return instance.load() ? instance.load()->counter().in_use() : 0; }

int64_t memory_peak() { return instance.load() ? instance.load()->counter().peak() : 0; }

void reset_memory_peak() {
  if (instance.load()) instance.load()->counter().reset_peak();
}

bool count_allocated(size_t bytes) {
  if (!instance.load()) return false;
  instance.load()->counter().add(bytes);
  return true;
}

void count_freed(size_t bytes) {
  if (instance.load()) instance.load()->counter().subtract(bytes);
}

}  // namespace dhif::cpu
