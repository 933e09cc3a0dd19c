#include "tracker/run/run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <stdexcept>

#include "common/util/clock.h"
#include "tracker/store/apply.h"

namespace tracker {
namespace {

std::string new_uid() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(gen()),
                static_cast<unsigned long long>(gen()));
  return buf;
}

}  // namespace

Run::Run(Run&& other) noexcept
    : sink_(other.sink_), id_(other.id_), uid_(std::move(other.uid_)), last_seq_(other.last_seq_) {}

void Run::send(EventBody body) {
  Event event{uid_, 0, std::move(body)};
  check(event);
  std::lock_guard<std::mutex> lock(mu_);
  event.seq = ++last_seq_;
  sink_->submit(std::move(event));
}

Applied Run::send_and_wait(EventBody body) {
  Event event{uid_, 0, std::move(body)};
  check(event);
  std::future<Applied> result;
  {
    std::lock_guard<std::mutex> lock(mu_);
    event.seq = ++last_seq_;
    result = sink_->submit_for_result(std::move(event));
  }
  return result.get();
}

Run Run::create(Sink& sink, const RunSpec& spec) {
  Run run(&sink, 0, new_uid(), 0);
  run.id_ = run.send_and_wait(RunCreated{spec.project, spec.name, spec.group, spec.tags, spec.notes, spec.config,
                                         util::unix_time()})
                .run_id;
  return run;
}

Run Run::resume(Store& store, int64_t run_id, int64_t from_step) {
  Store::RunPosition position = store.run_position(run_id);
  Run run(&store, run_id, std::move(position.uid), position.seq);
  run.send_and_wait(RunResumed{std::max<int64_t>(from_step, -1), util::unix_time()});
  return run;
}

void Run::log(int64_t step, std::initializer_list<std::pair<std::string_view, double>> values) {
  Metrics m{step, util::unix_time(), {}};
  m.values.reserve(values.size());
  for (const auto& [k, v] : values) m.values.emplace_back(k, v);
  send(std::move(m));
}

void Run::log(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  send(Metrics{step, util::unix_time(), values});
}

void Run::define_metric(const std::string& key, Goal goal) {
  send(MetricGoal{key, goal == Goal::kMinimize ? "min" : goal == Goal::kMaximize ? "max" : ""});
}

void Run::log_table(const std::string& name, int64_t step, const nlohmann::json& columns, const nlohmann::json& rows) {
  send(Table{name, step, columns, rows});
}

void Run::log_histogram(const std::string& key, int64_t step, const std::vector<double>& values, int bins) {
  if (bins < 1 || bins > 4096) throw std::invalid_argument("histogram bins must be 1..4096");
  double lo = INFINITY, hi = -INFINITY;
  for (double v : values)
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  std::vector<int64_t> counts(lo <= hi ? bins : 0, 0);
  if (lo > hi) lo = hi = 0;  // no finite values: an empty histogram
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    int b = hi > lo ? static_cast<int>((v - lo) / (hi - lo) * bins) : 0;
    counts[std::min(b, bins - 1)]++;
  }
  log_histogram(key, step, lo, hi, counts);
}

void Run::log_histogram(const std::string& key, int64_t step, double lo, double hi, const std::vector<int64_t>& counts) {
  send(Histogram{key, step, lo, hi, counts});
}

void Run::log_console(const std::string& stream, const std::string& line) {
  static const std::string kCut = "…[cut]";
  send(ConsoleLine{stream, line.size() > kMaxLineBytes ? line.substr(0, kMaxLineBytes - kCut.size()) + kCut : line,
                   util::unix_time()});
}

void Run::set_config(const nlohmann::json& config) { send(ConfigSet{config}); }

void Run::heartbeat() { send(Heartbeat{util::unix_time()}); }

void Run::finish(const std::string& status) {
  send(RunFinished{status, util::unix_time()});
  sink_->flush();
}

ArtifactVersion Run::log_artifact(const std::string& name, const std::string& type, const std::string& path,
                                  const nlohmann::json& metadata, const std::vector<std::string>& aliases) {
  namespace fs = std::filesystem;
  ArtifactLogged e{name, type, metadata.is_null() ? nlohmann::json::object() : metadata, aliases, {}, 0};
  std::vector<std::pair<std::string, std::string>> sources;  // relative path, file
  if (fs::is_directory(path)) {
    for (const auto& entry : fs::recursive_directory_iterator(path))
      if (entry.is_regular_file()) sources.emplace_back(fs::relative(entry.path(), path).generic_string(), entry.path().string());
    std::sort(sources.begin(), sources.end());
    if (sources.empty()) throw std::invalid_argument(path + ": an empty folder is not an artifact");
  } else if (fs::is_regular_file(path)) {
    sources.emplace_back(fs::path(path).filename().string(), path);
  } else {
    throw std::invalid_argument(path + ": no such file or folder");
  }
  for (const auto& [relative, source] : sources) e.files.push_back({relative, std::string(64, '0'), 0});
  check(Event{uid_, 1, e});  // names and metadata, before copying any bytes
  // A file found stored may be deleted by another process before our event applies (the
  // applier then reports MissingContent): store the files again and resend.
  for (int attempt = 1;; ++attempt) {
    for (size_t i = 0; i < sources.size(); ++i) e.files[i] = sink_->content().put(sources[i].second, sources[i].first);
    e.wall = util::unix_time();
    try {
      return *send_and_wait(e).artifact;
    } catch (const MissingContent&) {
      if (attempt == 3) throw;
    }
  }
}

ArtifactVersion Run::use_artifact(const std::string& ref) { return *send_and_wait(ArtifactUsed{ref}).artifact; }

ArtifactVersion Run::delete_artifact_version(const std::string& ref) {
  return *send_and_wait(ArtifactDeleted{ref}).artifact;
}

}  // namespace tracker
