// ThreadPool: a fixed set of threads running queued tasks in order. Private to client/.
//
//   ThreadPool pool(4);
//   pool.Submit([] { Decode(); });
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera::internal {

class ThreadPool {
 public:
  explicit ThreadPool(unsigned threads) {
    for (unsigned i = 0; i < std::max(1u, threads); ++i) {
      threads_.emplace_back([this](std::stop_token stop) { Loop(stop); });
    }
  }
  ~ThreadPool() {
    for (auto& t : threads_) t.request_stop();
    cv_.notify_all();
  }

  unsigned size() const { return static_cast<unsigned>(threads_.size()); }

  void Submit(std::function<void()> task) {
    {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Loop(std::stop_token stop) {
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock lock(mu_);
        if (!cv_.wait(lock, stop, [this] { return !tasks_.empty(); })) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::jthread> threads_;  // last: joined before the queue goes
};

}  // namespace tessera::internal
