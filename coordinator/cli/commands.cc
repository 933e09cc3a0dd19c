// `i3lab coordinator`, `submit`, `jobs`, `cancel`, `logs`, `workers`: flags in, one
// library call, a table or JSON out.
#include "coordinator/cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <future>
#include <memory>
#include <thread>

#include "common/util/clock.h"
#include "common/util/files.h"
#include "common/util/json.h"
#include "coordinator/client/client.h"
#include "coordinator/jobs/job_spec.h"
#include "coordinator/keys/keys.h"
#include "coordinator/cli/args.h"
#include "coordinator/cli/sweep_commands.h"
#include "coordinator/local/local_cluster.h"
#include "coordinator/server/coordinator.h"
#include "coordinator/wire/wire.h"
#include "model/config/train_config.h"
#include "web/server/server.h"

namespace coordinator {
namespace {

using cli::Args;
using cli::UsageError;
using nlohmann::json;

// "3m05s", "42s", "1h02m".
std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600) snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else if (t >= 60) snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

// The dashboard and HTTP API beside a coordinator of this process, on threads of their own;
// writes go through the coordinator's loop (Coordinator::call), so an answer means committed.
class Dashboard {
 public:
  Dashboard(Coordinator& coordinator, web::Options http) {
    http.backend = [&coordinator](const std::string& op, const json& a) {
      std::future<json> answer = coordinator.call(op, a);
      if (answer.wait_for(std::chrono::seconds(60)) != std::future_status::ready)
        throw std::runtime_error("the coordinator did not answer " + op + " within 60 s");
      return answer.get();
    };
    server_ = std::make_unique<web::Server>(http);
    coordinator.advertise_http(server_->url());  // for jobs' Python clients
    if (const std::string w = web::exposure_warning(http); !w.empty()) std::cerr << "warning: " << w << std::endl;
    thread_ = std::thread([this] { server_->serve(); });
  }
  ~Dashboard() {
    server_->stop();
    thread_.join();
  }
  std::string url() const { return server_->url() + "/"; }

 private:
  std::unique_ptr<web::Server> server_;
  std::thread thread_;
};

// --- coordinator -------------------------------------------------------------------------------

int coordinator_cmd(const Args& args) {
  Options options;
  options.db_path = args.get("db", "i3lab.db");
  options.artifacts = args.get("artifacts", "");
  options.listen = args.get("listen", "tcp://127.0.0.1:5555");
  options.insecure = args.has("insecure");
  if (args.has("allow") && !args.has("key")) throw UsageError("--allow needs --key (the coordinator's own key file)");
  if (args.has("key")) {
    options.key = keys::read_key_file(args.get("key"));
    if (!args.has("allow")) throw UsageError("--key needs --allow FILE: the public keys of the workers and clients to let in");
    options.allowed = keys::read_allow_list(args.get("allow"));
    if (options.allowed.empty()) throw UsageError("--allow " + args.get("allow") + ": no keys in it; add the lines i3lab keygen prints");
  }
  web::Options http;
  if (args.has("http-token") && !args.has("http")) throw UsageError("--http-token needs --http HOST:PORT");
  if (args.has("http")) {
    web::parse_http_address(args.get("http"), &http);
    if (args.has("http-token")) http.token = web::read_token_file(args.get("http-token"));
  }
  Coordinator coordinator(options);
  std::cout << "coordinator listening on " << coordinator.endpoint() << ", database " << options.db_path << std::endl;
  std::optional<Dashboard> dashboard;
  if (args.has("http")) {
    http.db_path = options.db_path;
    dashboard.emplace(coordinator, http);
    std::cout << "dashboard: " << dashboard->url() << std::endl;
  }
  if (options.key)
    std::cerr << "coordinator: CURVE keys: public key " << options.key->public_key << ", " << options.allowed.size()
              << " keys allowed" << std::endl;
  if (options.insecure && !wire::is_loopback(options.listen))
    std::cerr << "coordinator: warning: --insecure: any machine that reaches " << coordinator.endpoint()
              << " can register as a worker and submit jobs" << std::endl;
  const std::atomic<bool>& stop = cli::stop_on_signals();
  coordinator.serve(stop);
  std::cerr << "coordinator: stopped" << std::endl;
  return 0;
}

// --- keygen ------------------------------------------------------------------------------------

int keygen_cmd(const Args& args) {
  if (args.positional().size() != 1) throw UsageError("give one NAME: the key pair goes to NAME.key");
  const std::string path = args.positional()[0] + ".key";
  const keys::KeyPair pair = keys::generate();
  keys::write_key_file(path, pair);
  std::cout << pair.public_key << " " << std::filesystem::path(args.positional()[0]).filename().string() << std::endl;
  std::cerr << "wrote " << path << " (secret: keep it on its machine); the line above is its public key" << std::endl;
  return 0;
}

// --- submit ------------------------------------------------------------------------------------

// The job CONFIG describes: a job spec (it has "kind"), or a bare training config.
json job_from_file(const Args& args) {
  if (args.positional().size() != 1) throw UsageError("give one CONFIG file (a training config or a job spec)");
  const std::string path = args.positional()[0];
  json j = util::read_json_file(path);
  const std::vector<std::string> overrides = args.get_all("set");
  if (!j.is_object()) throw std::invalid_argument(path + ": must hold a JSON object");
  if (!j.contains("kind")) j = {{"kind", "train"}, {"config", j}};
  if (j["kind"] == "train") {
    json& config = j["config"];
    const std::string cwd = std::filesystem::current_path().string();
    // Checked here, before it is queued: an unknown key is the submitter's error, not a failed job.
    const i3::TrainConfig checked = config.is_string() ? i3::TrainConfig::load(config.get<std::string>(), overrides)
                                                       : i3::TrainConfig::parse(config, path + ": config", overrides);
    config = i3::with_absolute_paths(checked.to_json(), cwd);
  } else if (!overrides.empty()) {
    throw UsageError("--set changes a training config; " + path + " is a " + util::brief(j["kind"], 20) + " job");
  }
  if (args.has("priority")) j["priority"] = args.get_int("priority", 0, -1000000, 1000000);
  jobs::parse_job_spec(j, path);  // the coordinator checks again; this names the file
  return j;
}

int submit_cmd(const Args& args) {
  const json job = job_from_file(args);
  client::Client c(endpoint_of(args));
  const json result = c.call("submit", {{"jobs", json::array({job})}});
  std::cout << result["ids"][0].get<int64_t>() << std::endl;
  return 0;
}

// --- jobs, cancel, logs, workers ---------------------------------------------------------------

void print_jobs(const json& list) {
  std::cout << std::left << std::setw(7) << "ID" << std::setw(15) << "STATUS" << std::setw(9) << "ATTEMPTS" << std::setw(22)
            << "WORKER" << std::setw(9) << "RUNTIME" << "NAME\n";
  const double now = util::unix_time();
  for (const json& j : list) {
    double runtime = NAN;
    if (j["started_at"].is_number())
      runtime = (j["finished_at"].is_number() ? j["finished_at"].get<double>() : now) - j["started_at"].get<double>();
    std::string status = j["status"].get<std::string>();
    std::cout << std::setw(7) << j["id"].get<int64_t>() << std::setw(15) << status << std::setw(9) << j["attempts"].get<int>()
              << std::setw(22) << util::cut(j["worker"].get<std::string>(), 21) << std::setw(9) << duration(runtime)
              << util::cut(j["name"].get<std::string>(), 60) << "\n";
    if (!j["error"].get<std::string>().empty() && status != "succeeded")
      std::cout << "       " << util::cut(j["error"].get<std::string>(), 120) << "\n";
  }
}

int jobs_cmd(const Args& args) {
  json query = {{"limit", args.get_int("limit", 1000, 1, 1000000)}};
  if (args.has("status")) query["status"] = args.get("status");
  client::Client c(endpoint_of(args));
  const json list = c.call("jobs", query);
  if (args.has("json")) std::cout << list.dump() << std::endl;
  else print_jobs(list);
  return 0;
}

int cancel_cmd(const Args& args) {
  client::Client c(endpoint_of(args));
  const json r = c.call("cancel", {{"id", id_arg(args, "job")}});
  std::cout << "job " << r["id"].get<int64_t>() << ": " << r["status"].get<std::string>();
  if (r.contains("note")) std::cout << " (" << r["note"].get<std::string>() << ")";
  std::cout << std::endl;
  return 0;
}

int logs_cmd(const Args& args) {
  const int64_t id = id_arg(args, "job");
  client::Client c(endpoint_of(args));
  int attempt = static_cast<int>(args.get_int("attempt", 0, 0, 1 << 20));
  const int64_t rank = args.get_int("rank", 0, 0, jobs::kMaxRanks - 1);
  int64_t after = -1;
  while (true) {
    const json r = c.call("logs", {{"id", id}, {"attempt", attempt}, {"rank", rank}, {"after", after}});
    if (attempt == 0) attempt = r["attempt"].get<int>();
    for (const json& l : r["lines"]) {
      (l[1] == "stderr" ? std::cerr : std::cout) << l[3].get<std::string>() << "\n";
      after = l[0].get<int64_t>();
    }
    std::cout.flush();
    if (!r["lines"].empty()) continue;  // a full page: the next may be waiting already
    if (!args.has("follow")) break;
    // --follow moves on to a newer attempt once the one shown has been re-queued.
    if (r["attempts"].get<int>() > attempt) {
      attempt = r["attempts"].get<int>();
      std::cerr << "--- attempt " << attempt << " ---\n";
      after = -1;
      continue;
    }
    if (jobs::is_final_job_status(r["status"].get<std::string>())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return 0;
}

int workers_cmd(const Args& args) {
  client::Client c(endpoint_of(args));
  const json list = c.call("workers");
  if (args.has("json")) {
    std::cout << list.dump() << std::endl;
    return 0;
  }
  std::cout << std::left << std::setw(24) << "WORKER" << std::setw(8) << "STATUS" << std::setw(20) << "HOST" << std::setw(8)
            << "SLOTS" << std::setw(8) << "GPUS" << "JOBS\n";
  for (const json& w : list) {
    std::ostringstream slots, gpus, running;
    slots << w["used_slots"].get<int>() << "/" << w["cpu_slots"].get<int>();
    gpus << w["used_gpus"].size() << "/" << w["gpus"].size();
    for (const json& j : w["jobs"]) running << (running.tellp() ? "," : "") << j.get<int64_t>();
    std::cout << std::setw(24) << util::cut(w["id"].get<std::string>(), 23) << std::setw(8) << w["status"].get<std::string>()
              << std::setw(20) << util::cut(w["hostname"].get<std::string>(), 19) << std::setw(8) << slots.str() << std::setw(8)
              << gpus.str() << running.str() << "\n";
  }
  return 0;
}

// --- up ----------------------------------------------------------------------------------------

bool is_tty() { return isatty(STDERR_FILENO); }

// Progress of the jobs until each has ended (or `stop`); whether all succeeded.
bool watch_jobs(client::Client& c, const std::atomic<bool>& stop) {
  const auto start = util::Clock::now();
  std::string last;
  while (!stop.load()) {
    const json counts = c.call("counts");
    int done = 0, total = 0;
    for (const auto& [status, n] : counts.items()) {
      total += n.get<int>();
      if (jobs::is_final_job_status(status)) done += n.get<int>();
    }
    const int failed = counts.value("failed", 0) + counts.value("cancelled", 0);
    const double elapsed = util::seconds_since(start);
    std::ostringstream line;
    line << "jobs: " << done << "/" << total << " done (" << counts.value("succeeded", 0) << " succeeded, " << failed
         << " failed), " << counts.value("running", 0) + counts.value("assigned", 0) << " running, "
         << counts.value("queued", 0) << " queued | " << duration(elapsed);
    if (done > 0 && done < total) line << " | ETA " << duration(elapsed / done * (total - done));
    if (line.str() != last) {
      std::cerr << (is_tty() ? "\r\033[K" : "") << line.str() << (is_tty() ? "" : "\n") << std::flush;
      last = line.str();
    }
    if (total > 0 && done == total) {
      std::cerr << (is_tty() ? "\n" : "") << "i3lab up: every job ended; " << (failed ? "some failed: see i3lab jobs" : "all succeeded")
                << std::endl;
      return failed == 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return false;
}

int up_cmd(const Args& args) {
  if (args.positional().size() != 1) throw UsageError("give one CONFIG file: a training config, a job spec or a sweep definition");
  const bool sweep = is_sweep_file(args.positional()[0]);
  if (sweep && (args.has("set") || args.has("priority"))) throw UsageError("--set and --priority are for a job; a sweep sets its trials' configs");
  const json definition = sweep ? sweep_definition(args.positional()[0]) : job_from_file(args);
  LocalOptions options;
  options.db_path = args.get("db", "i3lab.db");
  options.listen = args.get("listen", "tcp://127.0.0.1:5555");
  options.workers = static_cast<int>(args.get_int("workers", 2, 1, 256));
  options.slots_per_worker = static_cast<int>(args.get_int("slots", 0, 1, 1 << 20));
  options.dir = args.get("dir", "i3lab-local");
  web::Options http;
  web::parse_http_address(args.get("http", "127.0.0.1:8080"), &http);
  http.db_path = options.db_path;
  LocalCluster cluster(options);
  std::optional<Dashboard> dashboard_holder;
  try {
    dashboard_holder.emplace(cluster.coordinator(), http);
  } catch (const std::runtime_error& e) {
    if (args.has("http")) throw;
    // The default port is taken (another dashboard, perhaps): any free one will do.
    std::cerr << "i3lab up: " << e.what() << "; using a free port instead (give --http HOST:PORT to choose)" << std::endl;
    http.port = 0;
    dashboard_holder.emplace(cluster.coordinator(), http);
  }
  Dashboard& dashboard = *dashboard_holder;
  std::cerr << "i3lab up: coordinator on " << cluster.endpoint() << " (database " << options.db_path << "), "
            << options.workers << " workers; logs in " << options.dir << "/; dashboard " << dashboard.url() << std::endl;
  client::Client c(cluster.endpoint());
  const std::atomic<bool>& stop = cli::stop_on_signals();
  bool ok = false;
  if (sweep) {
    const int64_t id = c.call("sweep_create", {{"definition", definition}})["id"].get<int64_t>();
    std::cout << "created sweep " << id << std::endl;
    const json s = watch_sweep(c, id, options.db_path, stop);
    ok = s["status"] == "finished" && s["counts"].value("failed", 0) == 0;
  } else {
    const json ids = c.call("submit", {{"jobs", json::array({definition})}})["ids"];
    std::cout << "submitted job " << ids[0].get<int64_t>() << std::endl;
    ok = watch_jobs(c, stop);
  }
  cluster.check();
  if (!stop.load() && !args.has("exit-when-done")) {
    std::cout << "dashboard: " << dashboard.url() << " (serving until Ctrl-C)" << std::endl;
    while (!stop.load()) {
      cluster.check();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  cluster.stop();
  cluster.check();
  return ok ? 0 : 1;
}

// --- bench scheduler ---------------------------------------------------------------------------

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

int bench_scheduler_cmd(const Args& args) {
  const int64_t n = args.get_int("jobs", 1000, 1, 1000000);
  LocalOptions options;
  options.workers = static_cast<int>(args.get_int("workers", 4, 1, 256));
  options.slots_per_worker = static_cast<int>(args.get_int("slots", 0, 1, 1 << 20));
  std::optional<util::TempDir> scratch;
  if (!args.has("dir")) scratch.emplace("i3lab-bench-scheduler");
  options.dir = scratch ? scratch->path() : args.get("dir");
  options.db_path = options.dir + "/i3lab.db";
  options.listen = "tcp://127.0.0.1:*";
  options.record_assign_latencies = true;
  LocalCluster cluster(options);
  client::Client c(cluster.endpoint());
  // Wait until every worker has said HELLO, so the clock measures scheduling, not start-up.
  const auto hello_deadline = util::Clock::now() + std::chrono::seconds(30);
  while (static_cast<int>(c.call("workers").size()) < options.workers) {
    if (util::Clock::now() > hello_deadline)
      throw std::runtime_error("the local workers did not register within 30 s; see " + options.dir + "/worker-*.log (give --dir to keep them)");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const json job = {{"kind", "command"}, {"argv", {"true"}}, {"max_restarts", 0}};
  const auto start = util::Clock::now();
  c.call("submit", {{"jobs", json(std::vector<json>(n, job))}}, std::chrono::seconds(120));
  int64_t ended = 0;
  json counts;
  auto progressed = util::Clock::now();
  while (ended < n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    counts = c.call("counts");
    const int64_t now_ended = counts.value("succeeded", 0) + counts.value("failed", 0);
    if (now_ended > ended) progressed = util::Clock::now();
    else if (util::seconds_since(progressed) > 60)
      throw std::runtime_error("no job ended for 60 s (" + std::to_string(ended) + " of " + std::to_string(n) + " did); see " +
                               options.dir + "/*.log (give --dir to keep them)");
    ended = now_ended;
  }
  const double seconds = util::seconds_since(start);
  cluster.stop();
  const std::vector<double>& latencies = cluster.coordinator().assign_latencies_ms();
  json out = {{"jobs", n},
              {"workers", options.workers},
              {"succeeded", counts.value("succeeded", 0)},
              {"seconds", seconds},
              {"jobs_per_sec", n / seconds},
              {"p50_assign_ms", percentile(latencies, 0.5)},
              {"p99_assign_ms", percentile(latencies, 0.99)}};
  if (args.has("json")) {
    std::cout << out.dump() << std::endl;
  } else {
    std::cout << n << " jobs through " << options.workers << " workers in " << seconds << " s: " << out["jobs_per_sec"].get<double>()
              << " jobs/s; assignment p50 " << out["p50_assign_ms"].get<double>() << " ms, p99 "
              << out["p99_assign_ms"].get<double>() << " ms\n";
  }
  return counts.value("succeeded", 0) == n ? 0 : 1;
}

const char* kEndpointHelp = "  --coordinator ENDPOINT  the coordinator (default tcp://127.0.0.1:5555)\n";

}  // namespace

std::vector<cli::Command> coordinator_commands() {
  std::vector<cli::Command> commands = {
      {"coordinator", "run the coordinator: job queue, scheduler, worker registry",
       "usage: i3lab coordinator [--db FILE] [--artifacts DIR] [--listen ENDPOINT] [--key FILE --allow FILE]\n"
       "                         [--insecure] [--http HOST:PORT [--http-token FILE]]\n"
       "Owns the tracker database (default i3lab.db), its artifact files (in DIR, default FILE.artifacts/;\n"
       "given, FILE.artifacts links to DIR) and the job queue;\n"
       "workers and clients connect to ENDPOINT (default tcp://127.0.0.1:5555; tcp://127.0.0.1:* picks a\n"
       "free port, printed at start). --key: this coordinator's key file (i3lab keygen); --allow: a file\n"
       "of the public keys let in, one per line. Listening beyond this machine needs them, or --insecure.\n"
       "--http: serve the dashboard and the HTTP API (docs/api.md) at http://HOST:PORT/; beyond loopback,\n"
       "writes need the token in --http-token FILE (its first line, 16 characters or more).\n"
       "SIGINT or SIGTERM stops it; started again on the same database it continues where it was.\n",
       {{"db", "artifacts", "listen", "key", "allow", "http", "http-token"}, {"insecure"}}, coordinator_cmd},
      {"keygen", "make a CURVE key pair for a coordinator, worker or client",
       "usage: i3lab keygen NAME\n"
       "Writes NAME.key (both keys, mode 0600; never overwritten) and prints the public key, a line\n"
       "for the coordinator's --allow file. Workers take --key NAME.key --coordinator-key KEY; other\n"
       "commands take I3LAB_KEY=NAME.key and I3LAB_COORDINATOR_KEY=KEY from the environment.\n",
       {{}, {}}, keygen_cmd},
      {"submit", "queue a job on a coordinator; prints its id",
       std::string("usage: i3lab submit CONFIG [--coordinator ENDPOINT] [--priority P] [--set SECTION.KEY=VALUE]...\n"
                   "CONFIG is a training config (docs/training.md), checked here, its relative paths taken from\n"
                   "this folder; or a job spec with \"kind\": command, train or eval (docs/jobs.md).\n") +
           kEndpointHelp,
       {{"coordinator", "priority", "set"}, {}}, submit_cmd},
      {"jobs", "list a coordinator's jobs",
       std::string("usage: i3lab jobs [--coordinator ENDPOINT] [--status S] [--limit N] [--json]\n"
                   "Newest first. --json: an array of objects with id, status, attempts, worker, name, kind, …\n") +
           kEndpointHelp,
       {{"coordinator", "status", "limit"}, {"json"}}, jobs_cmd},
      {"cancel", "cancel a job (SIGTERM, then SIGKILL after its grace period)",
       std::string("usage: i3lab cancel ID [--coordinator ENDPOINT]\n") + kEndpointHelp, {{"coordinator"}, {}}, cancel_cmd},
      {"logs", "a job's console output",
       std::string("usage: i3lab logs ID [--coordinator ENDPOINT] [--attempt N] [--rank R] [--follow]\n"
                   "The newest attempt's stdout and stderr (of rank R of a multi-rank job, default 0); --follow\n"
                   "waits for more until the job ends.\n") +
           kEndpointHelp,
       {{"coordinator", "attempt", "rank"}, {"follow"}}, logs_cmd},
      {"up", "start a coordinator, local workers and the dashboard; run CONFIG (a job or a sweep)",
       "usage: i3lab up CONFIG [--workers N] [--slots N] [--exit-when-done] [--db FILE] [--listen ENDPOINT] [--dir DIR]\n"
       "                       [--http HOST:PORT]\n"
       "Starts a coordinator (database FILE, default i3lab.db; ENDPOINT default tcp://127.0.0.1:5555), N\n"
       "local workers (default 2, each offering --slots CPU slots) and the dashboard at HOST:PORT (default\n"
       "127.0.0.1:8080, or a free port when that is taken; :0 picks a free port). CONFIG is a job,\n"
       "submitted as `i3lab submit` does, or a sweep definition (it has method and parameters), created\n"
       "as `i3lab sweep` does (docs/sweeps.md). Shows progress until\n"
       "every job (or the sweep) ended, then the sweep's best trial; then keeps serving until Ctrl-C, or\n"
       "with --exit-when-done exits: 0 when nothing failed, 1 otherwise. Logs and work folders go to DIR\n"
       "(default i3lab-local).\n",
       {{"workers", "slots", "db", "listen", "dir", "set", "priority", "http"}, {"exit-when-done"}}, up_cmd},
      {"bench scheduler", "scheduler throughput and assignment latency with local workers",
       "usage: i3lab bench scheduler [--jobs N] [--workers W] [--slots N] [--json] [--dir DIR]\n"
       "Submits N command jobs running `true` (default 1000) to an in-process coordinator with W local\n"
       "worker processes (default 4), every state change committed before it is acted on, and reports\n"
       "jobs/s from submission to the last success and the p50/p99 assignment latency: from the moment a\n"
       "job could be placed (submitted, or its worker's slot freed) until its ASSIGN left.\n",
       {{"jobs", "workers", "slots", "dir"}, {"json"}}, bench_scheduler_cmd},
      {"workers", "list a coordinator's workers",
       std::string("usage: i3lab workers [--coordinator ENDPOINT] [--json]\n") + kEndpointHelp,
       {{"coordinator"}, {"json"}}, workers_cmd},
  };
  for (cli::Command& c : sweep_commands()) commands.push_back(std::move(c));
  return commands;
}

}  // namespace coordinator
