#include "coordinator/cli/sweep_commands.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "common/config_file/config_file.h"
#include "common/util/clock.h"
#include "common/util/json.h"
#include "coordinator/cli/args.h"
#include "coordinator/jobs/job_spec.h"
#include "coordinator/sweep/sweep_spec.h"
#include "coordinator/synthetic/synthetic.h"
#include "model/config/train_config.h"
#include "tracker/query/query.h"

namespace coordinator {
namespace {

using cli::Args;
using cli::UsageError;
using nlohmann::json;

std::string number(const json& v) {
  if (!v.is_number()) return "-";
  std::ostringstream s;
  s << std::setprecision(5) << v.get<double>();
  return s.str();
}

std::string params_text(const json& params) {
  std::string out;
  for (const auto& [k, v] : params.items()) out += (out.empty() ? "" : " ") + k + "=" + (v.is_number_float() ? number(v) : util::brief(v, 24));
  return out;
}

std::string counts_text(const json& counts) {
  std::string out;
  for (const auto& [status, n] : counts.items()) out += (out.empty() ? "" : ", ") + std::to_string(n.get<int>()) + " " + status;
  return out.empty() ? "no trials yet" : out;
}

// --- sweep, sweeps, sweep show|rerun|cancel ------------------------------------------------

int sweep_cmd(const Args& args) {
  if (args.positional().size() != 1) throw UsageError("give one sweep CONFIG file (JSON or YAML)");
  const json definition = sweep_definition(args.positional()[0]);
  client::Client c(endpoint_of(args));
  const json r = c.call("sweep_create", {{"definition", definition}});
  std::cout << r["id"].get<int64_t>() << std::endl;
  std::cerr << "sweep " << r["id"].get<int64_t>() << " created"
            << (r.contains("grid_size") ? " (a grid of " + std::to_string(r["grid_size"].get<uint64_t>()) + " points)" : "")
            << "; follow it with i3lab sweep show " << r["id"].get<int64_t>() << std::endl;
  return 0;
}

int sweeps_cmd(const Args& args) {
  client::Client c(endpoint_of(args));
  const json list = c.call("sweeps", {{"limit", args.get_int("limit", 100, 1, 10000)}});
  if (args.has("json")) {
    std::cout << list.dump() << std::endl;
    return 0;
  }
  std::cout << std::left << std::setw(6) << "ID" << std::setw(11) << "STATUS" << std::setw(8) << "METHOD" << std::setw(8) << "TRIALS"
            << std::setw(12) << "BEST" << "NAME\n";
  for (const json& s : list)
    std::cout << std::setw(6) << s["id"].get<int64_t>() << std::setw(11) << s["status"].get<std::string>() << std::setw(8)
              << s["method"].get<std::string>() << std::setw(8) << s["trials"].get<int64_t>() << std::setw(12)
              << (s["best"].is_object() ? number(s["best"]["value"]) : "-") << util::cut(s["name"].get<std::string>(), 60) << "\n";
  return 0;
}

void print_sweep(const json& s) {
  const json& metric = s["metric"];
  std::cout << "sweep " << s["id"].get<int64_t>() << " (" << s["name"].get<std::string>() << "): " << s["status"].get<std::string>()
            << ", " << s["method"].get<std::string>() << ", " << counts_text(s["counts"]);
  if (!s["note"].get<std::string>().empty()) std::cout << "; " << s["note"].get<std::string>();
  std::cout << "\n";
  const std::string metric_name = metric.value("name", "");
  if (s["best"].is_object())
    std::cout << "best: trial " << s["best"]["trial"].get<int64_t>() << ", " << metric_name << " " << number(s["best"]["value"]) << ", "
              << params_text(s["best"]["params"]) << "\n";
  std::cout << std::left << std::setw(7) << "TRIAL" << std::setw(7) << "JOB" << std::setw(15) << "STATUS" << std::setw(9) << "STEP"
            << std::setw(12) << (metric_name.empty() ? "METRIC" : util::cut(metric_name, 11)) << "PARAMETERS\n";
  for (const json& t : s["trials"]) {
    std::cout << std::setw(7) << t["trial"].get<int64_t>() << std::setw(7) << t["job"].get<int64_t>() << std::setw(15)
              << t["status"].get<std::string>() << std::setw(9) << (t["step"].is_number() ? std::to_string(t["step"].get<int64_t>()) : "-")
              << std::setw(12) << number(t["value"]) << params_text(t["params"]);
    if (t["replaced_by"].is_number()) std::cout << "  (re-run as trial " << t["replaced_by"].get<int64_t>() << ")";
    std::cout << "\n";
  }
}

int sweep_show_cmd(const Args& args) {
  client::Client c(endpoint_of(args));
  const json s = c.call("sweep_show", {{"id", id_arg(args, "sweep")}});
  if (args.has("json")) std::cout << s.dump() << std::endl;
  else print_sweep(s);
  return 0;
}

int sweep_rerun_cmd(const Args& args) {
  if (!args.has("failed")) throw UsageError("give --failed: re-run the trials that failed, were cancelled or whose run was deleted");
  client::Client c(endpoint_of(args));
  const json r = c.call("sweep_rerun", {{"id", id_arg(args, "sweep")}});
  for (const json& t : r["rerun"])
    std::cout << "trial " << t["replaces"].get<int64_t>() << " (" << t["why"].get<std::string>() << ") runs again as trial "
              << t["trial"].get<int64_t>() << ", job " << t["job"].get<int64_t>() << "\n";
  if (r["rerun"].empty()) std::cout << "sweep " << r["id"].get<int64_t>() << ": no trial failed, was cancelled or lost its run\n";
  return 0;
}

int sweep_cancel_cmd(const Args& args) {
  client::Client c(endpoint_of(args));
  const json r = c.call("sweep_cancel", {{"id", id_arg(args, "sweep")}});
  std::cout << "sweep " << r["id"].get<int64_t>() << ": " << r["status"].get<std::string>() << ", stopping "
            << r["stopping"].get<int64_t>() << " trials\n";
  return 0;
}

// --- job synthetic -------------------------------------------------------------------------

int job_synthetic_cmd(const Args& args) {
  const json base = args.has("config") ? config_file::read(args.get("config")) : json::object();
  const synthetic::Config config =
      synthetic::parse_config(base, args.has("config") ? args.get("config") : "the config", args.get_all("set"));
  const std::atomic<bool>& stop = cli::stop_on_signals();
  const synthetic::Result r = synthetic::run(config, args.get("db", "i3lab.db"), stop);
  std::cout << r.run_id << std::endl;
  std::cerr << "run " << r.run_id << " " << r.status << " at step " << r.step << ", loss " << r.loss << std::endl;
  return 0;
}

// A sample the run generated: the newest row of its "samples" table, or "".
std::string newest_sample(const std::string& db_path, const std::string& run_uid) {
  try {
    tracker::Query q(db_path);
    tracker::RunFilter filter;
    filter.where = {"uid=" + run_uid};
    const std::vector<tracker::RunRecord> runs = q.runs(filter);
    if (runs.empty()) return "";
    const std::vector<int64_t> steps = q.table_steps(runs[0].id, "samples");
    if (steps.empty()) return "";
    const json table = q.table(runs[0].id, "samples", steps.back());
    for (const json& row : table.value("rows", json::array()))
      if (row.is_array() && row.size() >= 3 && row[1].is_string() && row[2].is_string())
        return "step " + std::to_string(steps.back()) + ", \"" + row[1].get<std::string>() + "\" → \"" + row[2].get<std::string>() + "\"";
  } catch (const std::exception&) {
  }
  return "";
}

}  // namespace

bool is_sweep_file(const std::string& path) {
  const json j = config_file::read(path);
  return j.is_object() && j.contains("method") && j.contains("parameters");
}

json sweep_definition(const std::string& path) {
  sweep::SweepSpec spec = sweep::read_sweep_file(path);
  for (const std::string& note : spec.notes) std::cerr << "note: " << note << std::endl;
  if (spec.job["kind"] == "train") {
    // As `i3lab submit` does: the config checked, its paths taken from this folder.
    const i3::TrainConfig checked = i3::TrainConfig::parse(spec.job["config"], path + ": job.config");
    spec.job["config"] = i3::with_absolute_paths(checked.to_json(), std::filesystem::current_path().string());
  }
  return sweep::to_json(spec);
}

json watch_sweep(client::Client& c, int64_t id, const std::string& db_path, const std::atomic<bool>& stop) {
  const bool tty = isatty(STDERR_FILENO);
  const auto start = util::Clock::now();
  std::string last;
  double last_print = 0;
  json s;
  while (true) {
    s = c.call("sweep_show", {{"id", id}});
    const json& counts = s["counts"];
    int ended = 0, running = 0;
    for (const auto& [status, n] : counts.items()) (jobs::is_final_job_status(status) ? ended : running) += n.get<int>();
    const double elapsed = util::seconds_since(start);
    std::ostringstream state;
    state << "sweep " << id << ": " << ended << " trials ended, " << running << " unfinished (" << counts_text(counts) << ")";
    if (s["best"].is_object())
      state << " | best " << s["metric"].value("name", "") << " " << number(s["best"]["value"]) << " (trial " << s["best"]["trial"].get<int64_t>() << ")";
    std::ostringstream line;
    line << state.str() << " | " << std::fixed << std::setprecision(0) << elapsed << " s";
    const int64_t total = s["spec"].value("run_cap", int64_t{0}) > 0 ? s["spec"]["run_cap"].get<int64_t>() : s.value("grid_size", int64_t{0});
    if (total > 0 && ended > 0 && ended < total) line << " | ETA " << std::setprecision(0) << elapsed / ended * (total - ended) << " s";
    // A terminal's line is redrawn every second; a log gets a line when something changed, or
    // every 30 s.
    if (tty ? line.str() != last : state.str() != last || elapsed - last_print >= 30) {
      std::cerr << (tty ? "\r\033[K" : "") << line.str() << (tty ? "" : "\n") << std::flush;
      last = tty ? line.str() : state.str();
      last_print = elapsed;
    }
    if (s["status"] != "running" || stop.load()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (tty) std::cerr << "\n";
  std::cout << "sweep " << id << " " << s["status"].get<std::string>() << (s["note"].get<std::string>().empty() ? "" : ": " + s["note"].get<std::string>())
            << "\n";
  if (s["best"].is_object()) {
    const json& best = s["best"];
    std::cout << "best trial: " << best["trial"].get<int64_t>() << " (job " << best["job"].get<int64_t>() << ", run "
              << best["run"].get<std::string>() << "), " << s["metric"].value("name", "") << " " << number(best["value"]) << ", "
              << params_text(best["params"]) << "\n";
    const std::string sample = newest_sample(db_path, best["run"].get<std::string>());
    if (!sample.empty()) std::cout << "its sample: " << sample << "\n";
  }
  std::cout.flush();
  return s;
}

std::vector<cli::Command> sweep_commands() {
  const std::string endpoint = "  --coordinator ENDPOINT  the coordinator (default tcp://127.0.0.1:5555)\n";
  return {
      {"sweep", "create a hyperparameter sweep on a coordinator; prints its id",
       "usage: i3lab sweep CONFIG [--coordinator ENDPOINT]\n"
       "CONFIG: a sweep definition, JSON or YAML, with W&B's keys (method grid|random|bayes, metric,\n"
       "parameters, early_terminate, run_cap) and i3lab's job, max_concurrent and seed (docs/sweeps.md).\n"
       "It is checked here, before anything runs. The coordinator then makes the trials, as jobs.\n" + endpoint,
       {{"coordinator"}, {}}, sweep_cmd},
      {"sweeps", "list a coordinator's sweeps",
       "usage: i3lab sweeps [--coordinator ENDPOINT] [--limit N] [--json]\n" + endpoint, {{"coordinator", "limit"}, {"json"}}, sweeps_cmd},
      {"sweep show", "a sweep's trials: parameters, status, metric",
       "usage: i3lab sweep show ID [--coordinator ENDPOINT] [--json]\n" + endpoint, {{"coordinator"}, {"json"}}, sweep_show_cmd},
      {"sweep rerun", "run a sweep's failed trials again",
       "usage: i3lab sweep rerun ID --failed [--coordinator ENDPOINT]\n"
       "Each trial that failed (after its job's retries), was cancelled, or whose run was deleted runs\n"
       "again with the same parameters, as a new trial; the sweep runs again if it had ended.\n" + endpoint,
       {{"coordinator"}, {"failed"}}, sweep_rerun_cmd},
      {"sweep cancel", "stop a sweep: its unfinished trials are cancelled",
       "usage: i3lab sweep cancel ID [--coordinator ENDPOINT]\n" + endpoint, {{"coordinator"}, {}}, sweep_cancel_cmd},
      {"job synthetic", "a fast stand-in for training with a known optimum, for testing sweeps",
       "usage: i3lab job synthetic [--config FILE] [--set KEY=VALUE]... [--db FILE]\n"
       "Logs `loss` at every step into the tracker database FILE (default i3lab.db), a noisy function of\n"
       "x, y, lr, n and choice with its optimum at x=0.3 y=-0.2 lr=0.001 n=4 choice=a, improving with steps:\n"
       "  loss = (x-0.3)^2 + (y+0.2)^2 + 0.1 (log10 lr + 3)^2 + 0.01 (n-4)^2 + [0, 0.1, 0.2 for a, b, other]\n"
       "         + 1/sqrt(step) + noise N(0,1)\n"
       "Other keys: steps (100), step_ms (10), noise (0.01), seed (0), fail_if_exists (a path: exit 1 while\n"
       "it exists), project, name, group. Prints the run id. As a job: {\"kind\": \"synthetic\", \"config\": {...}}.\n",
       {{"config", "set", "db"}, {}}, job_synthetic_cmd},
  };
}

}  // namespace coordinator
