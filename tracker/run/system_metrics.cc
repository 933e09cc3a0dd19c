#include "tracker/run/system_metrics.h"

#include <dlfcn.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/util/clock.h"
#include "tracker/run/run.h"

namespace tracker {
namespace {

// utime + stime of this process, in seconds (/proc/self/stat fields 14 and 15).
double process_cpu_seconds() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const size_t close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;
  unsigned long long utime = 0, stime = 0;
  fields >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Busy and total jiffies of all cores (/proc/stat's first line).
void machine_jiffies(unsigned long long* busy, unsigned long long* total) {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long v[8] = {0};
  in >> cpu;
  for (auto& x : v) in >> x;
  *total = 0;
  for (auto x : v) *total += x;
  *busy = *total - v[3] - v[4];  // minus idle and iowait
}

double meminfo_kb(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  double value;
  std::string unit;
  while (in >> name >> value) {
    std::getline(in, unit);
    if (name == key + ":") return value;
  }
  return 0;
}

}  // namespace

// The few NVML entry points used, looked up at run time.
struct SystemSampler::Nvml {
  using Device = void*;
  struct Utilization {
    unsigned int gpu, memory;
  };
  struct Memory {
    unsigned long long total, free, used;
  };
  void* lib = nullptr;
  int (*shutdown)() = nullptr;
  int (*get_handle)(unsigned int, Device*) = nullptr;
  int (*get_utilization)(Device, Utilization*) = nullptr;
  int (*get_memory)(Device, Memory*) = nullptr;
  int (*get_power)(Device, unsigned int*) = nullptr;               // milliwatts
  int (*get_temperature)(Device, int, unsigned int*) = nullptr;    // sensor 0: the GPU die
  unsigned int count = 0;

  static std::unique_ptr<Nvml> load() {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return nullptr;
    auto n = std::make_unique<Nvml>();
    n->lib = lib;
    auto sym = [&](const char* name) { return dlsym(lib, name); };
    auto init = reinterpret_cast<int (*)()>(sym("nvmlInit_v2"));
    auto get_count = reinterpret_cast<int (*)(unsigned int*)>(sym("nvmlDeviceGetCount_v2"));
    n->shutdown = reinterpret_cast<int (*)()>(sym("nvmlShutdown"));
    n->get_handle = reinterpret_cast<int (*)(unsigned int, Device*)>(sym("nvmlDeviceGetHandleByIndex_v2"));
    n->get_utilization = reinterpret_cast<int (*)(Device, Utilization*)>(sym("nvmlDeviceGetUtilizationRates"));
    n->get_memory = reinterpret_cast<int (*)(Device, Memory*)>(sym("nvmlDeviceGetMemoryInfo"));
    n->get_power = reinterpret_cast<int (*)(Device, unsigned int*)>(sym("nvmlDeviceGetPowerUsage"));
    n->get_temperature = reinterpret_cast<int (*)(Device, int, unsigned int*)>(sym("nvmlDeviceGetTemperature"));
    if (!init || !get_count || !n->get_handle || init() != 0 || get_count(&n->count) != 0) {
      dlclose(lib);
      return nullptr;
    }
    return n;
  }
  ~Nvml() {
    if (shutdown) shutdown();
    if (lib) dlclose(lib);
  }
};

SystemSampler::SystemSampler() : nvml_(Nvml::load()) {
  last_wall_ = util::monotonic_seconds();
  last_process_cpu_ = process_cpu_seconds();
  machine_jiffies(&last_busy_, &last_total_);
}

SystemSampler::~SystemSampler() = default;

int SystemSampler::gpu_count() const { return nvml_ ? static_cast<int>(nvml_->count) : 0; }

std::vector<std::pair<std::string, double>> SystemSampler::sample() {
  std::vector<std::pair<std::string, double>> out;
  const double wall = util::monotonic_seconds(), cpu = process_cpu_seconds();
  if (wall > last_wall_) out.emplace_back("system/cpu_percent", 100.0 * (cpu - last_process_cpu_) / (wall - last_wall_));
  last_wall_ = wall, last_process_cpu_ = cpu;
  unsigned long long busy, total;
  machine_jiffies(&busy, &total);
  if (total > last_total_)
    out.emplace_back("system/machine_cpu_percent", 100.0 * static_cast<double>(busy - last_busy_) / static_cast<double>(total - last_total_));
  last_busy_ = busy, last_total_ = total;
  {
    std::ifstream statm("/proc/self/statm");
    long pages_total = 0, pages_resident = 0;
    statm >> pages_total >> pages_resident;
    out.emplace_back("system/rss_bytes", static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)));
  }
  const double mem_total = meminfo_kb("MemTotal"), mem_available = meminfo_kb("MemAvailable");
  if (mem_total > 0) out.emplace_back("system/machine_memory_used_percent", 100.0 * (1 - mem_available / mem_total));
  for (unsigned int i = 0; nvml_ && i < nvml_->count; ++i) {
    Nvml::Device device;
    if (nvml_->get_handle(i, &device) != 0) continue;
    const std::string prefix = "system/gpu." + std::to_string(i) + ".";
    Nvml::Utilization u;
    if (nvml_->get_utilization && nvml_->get_utilization(device, &u) == 0)
      out.emplace_back(prefix + "utilization_percent", u.gpu);
    Nvml::Memory m;
    if (nvml_->get_memory && nvml_->get_memory(device, &m) == 0) {
      out.emplace_back(prefix + "memory_used_bytes", static_cast<double>(m.used));
      out.emplace_back(prefix + "memory_total_bytes", static_cast<double>(m.total));
    }
    unsigned int value;
    if (nvml_->get_power && nvml_->get_power(device, &value) == 0) out.emplace_back(prefix + "power_watts", value / 1000.0);
    if (nvml_->get_temperature && nvml_->get_temperature(device, 0, &value) == 0)
      out.emplace_back(prefix + "temperature_c", value);
  }
  return out;
}

SystemMonitor::SystemMonitor(Run& run, std::chrono::milliseconds interval, int64_t first_step) : run_(run) {
  thread_ = std::thread([this, interval, first_step] {
    SystemSampler sampler;
    std::unique_lock<std::mutex> lock(mu_);
    for (int64_t step = first_step; !cv_.wait_for(lock, interval, [&] { return stop_; }); ++step) {
      run_.log(step, sampler.sample());
      run_.heartbeat();
    }
  });
}

SystemMonitor::~SystemMonitor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

}  // namespace tracker
