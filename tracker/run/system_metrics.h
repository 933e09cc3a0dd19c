// System metrics of the process and the machine, like W&B's system charts:
//   system/cpu_percent          this process, 100 = one core busy
//   system/machine_cpu_percent  all cores, 100 = every core busy
//   system/rss_bytes            this process's resident memory
//   system/machine_memory_used_percent
//   system/gpu.N.utilization_percent, .memory_used_bytes, .memory_total_bytes, .power_watts,
//   system/gpu.N.temperature_c  for each NVIDIA GPU, through NVML
// NVML is loaded with dlopen("libnvidia-ml.so.1") when present; without it there are simply
// no GPU metrics (normal on CPU machines, not an error).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tracker {

class Run;

class SystemSampler {
 public:
  SystemSampler();
  ~SystemSampler();
  // Values since the previous call (CPU percentages need two readings: the first call
  // reports them over the time since construction).
  std::vector<std::pair<std::string, double>> sample();
  int gpu_count() const;

 private:
  struct Nvml;
  std::unique_ptr<Nvml> nvml_;
  double last_wall_ = 0, last_process_cpu_ = 0;
  unsigned long long last_busy_ = 0, last_total_ = 0;
};

// Samples every `interval` on a background thread, logging to `run` with the sample number as
// the step (counting from first_step: a resumed run continues its earlier samples), and sends
// the run's heartbeat. Stops (without a last sample) when destroyed.
class SystemMonitor {
 public:
  explicit SystemMonitor(Run& run, std::chrono::milliseconds interval = std::chrono::seconds(10), int64_t first_step = 0);
  ~SystemMonitor();

 private:
  Run& run_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tracker
