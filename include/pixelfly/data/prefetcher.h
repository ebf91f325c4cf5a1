// A background thread that produces a sequence of items in order, at most `depth` ahead of the
// consumer: the data loaders' batches are made while the trainer computes. Which item comes
// i-th is decided by the producer function alone, so results do not depend on thread timing.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace pixelfly::data {

template <typename T>
class Prefetcher {
 public:
  Prefetcher() = default;
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;
  ~Prefetcher() { stop(); }

  // Stops the running producer (dropping what it made), then makes produce(0), produce(1), ...
  // on a new thread: `count` items (< 0: no end), at most `depth` (>= 1) waiting at a time.
  void start(int64_t depth, int64_t count, std::function<T(int64_t)> produce) {
    stop();
    worker_ = std::thread([this, depth, count, produce = std::move(produce)] {
      for (int64_t i = 0; count < 0 || i < count; ++i) {
        T item = produce(i);
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || static_cast<int64_t>(ready_.size()) < depth; });
        if (stopping_) return;
        ready_.push_back(std::move(item));
        changed_.notify_all();
      }
    });
  }

  // The next item, waiting for the producer; the caller asks for no more than `count`.
  T next() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return !ready_.empty(); });
    T item = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
    return item;
  }

  // Ends the producer thread and drops the items it made.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (worker_.joinable()) worker_.join();
    std::lock_guard<std::mutex> lock(mutex_);
    ready_.clear();
    stopping_ = false;
  }

 private:
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<T> ready_;
  bool stopping_ = false;
};

}  // namespace pixelfly::data
