#include "coordinator/server/coordinator.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <variant>
#include <zmq.hpp>

#include "common/util/clock.h"
#include "common/util/json.h"
#include "common/util/sha256.h"
#include "coordinator/jobs/job_store.h"
#include "coordinator/protocol/protocol.h"
#include "coordinator/scheduler/placement.h"
#include "coordinator/sweep/sweeps.h"
#include "coordinator/wire/wire.h"
#include "tracker/events/events.h"

namespace coordinator {
namespace {

using nlohmann::json;
using protocol::Message;
using protocol::Type;

constexpr int kMaxMessagesPerTurn = 5000;  // then commit and send, so replies do not wait on a flood
constexpr size_t kMaxCallsPerTurn = 8;       // the same for calls (an HTTP write may carry 100,000 events)
constexpr double kMaxBackoffS = 60;
constexpr int64_t kMaxLogLine = int64_t{1} << 48;  // a line number; first + count stays far from overflow

struct LeaseKey {
  int64_t job;
  int attempt, rank;
  bool operator<(const LeaseKey& o) const {
    return std::tie(job, attempt, rank) < std::tie(o.job, o.attempt, o.rank);
  }
};

struct WorkerState {
  jobs::WorkerRow row;
  scheduler::Node node;
  std::string peer;        // routing identity of its socket
  int64_t session = -1;    // from its HELLO; -1: not greeted since this coordinator started
  double heard = 0;        // monotonic seconds: last message from it
  double sent = 0;         // monotonic seconds: last message to it
  double freed = 0;        // monotonic seconds: resources last given back
  bool greeted() const { return session >= 0 && row.status == "alive"; }
};

// How one rank of the current attempt ended.
struct RankEnd {
  bool lost = false;
  int exit_code = 0, signal = 0;
  bool ok() const { return !lost && exit_code == 0 && signal == 0; }
};

struct JobState {
  jobs::JobRow row;
  double placeable_since = 0;  // monotonic: queued (and past its backoff) since
  double attempt_started = 0;  // monotonic: the current attempt's first STARTED
  bool timed_out = false;
  bool started = false;        // some rank of the current attempt started
  std::map<int, RankEnd> ends;  // of the current attempt
  std::string lost_reason;
};

std::string describe_end(const RankEnd& e) {
  if (e.signal) return "killed by signal " + std::to_string(e.signal) + " (" + strsignal(e.signal) + ")";
  return "exit code " + std::to_string(e.exit_code);
}

scheduler::Capacity capacity_from(const json& r) {
  scheduler::Capacity c;
  if (r.contains("cpu_slots") && r["cpu_slots"].is_number_integer()) c.cpu_slots = std::max(0, r["cpu_slots"].get<int>());
  if (r.contains("memory_mb") && r["memory_mb"].is_number_integer()) c.memory_mb = std::max<int64_t>(0, r["memory_mb"].get<int64_t>());
  if (r.contains("gpus") && r["gpus"].is_array())
    for (const json& g : r["gpus"])
      if (g.is_object() && g.contains("index") && g["index"].is_number_integer()) c.gpus.push_back(g["index"].get<int>());
  if (r.contains("labels") && r["labels"].is_object())
    for (const auto& [k, v] : r["labels"].items())
      if (v.is_string()) c.labels[k] = v.get<std::string>();
  return c;
}

// The integer field `name` of a decoded body, or `fallback`.
int64_t int_field(const json& body, const char* name, int64_t fallback = 0) {
  const auto it = body.find(name);
  return it != body.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

bool is_sha256(const json& v) { return v.is_string() && util::is_sha256_hex(v.get_ref<const std::string&>()); }

// An artifact file arriving in chunks (UPLOAD).
struct Upload {
  std::unique_ptr<tracker::IncomingFile> file;
  double last_chunk = 0;  // monotonic seconds
};

// Options::artifacts: DB.artifacts, the content store's place (tracker/db/content.h), becomes
// a link to the folder, which is created. Refused where DB.artifacts is already a folder, or a
// link to another one: moving artifact files is for a person to do.
const std::string& link_artifact_store(const Options& o) {
  namespace fs = std::filesystem;
  if (o.artifacts.empty()) return o.db_path;
  const fs::path link = o.db_path + ".artifacts", target = fs::absolute(o.artifacts).lexically_normal();
  fs::create_directories(target);
  if (fs::is_symlink(link)) {
    if (fs::canonical(link) != fs::canonical(target))
      throw std::runtime_error("--artifacts " + o.artifacts + ": the artifact files of " + o.db_path + " are in " +
                               fs::read_symlink(link).string() + " (" + link.string() + " links there); move them and the link, or leave out --artifacts");
  } else if (fs::exists(link)) {
    throw std::runtime_error("--artifacts " + o.artifacts + ": the artifact files of " + o.db_path + " are in " + link.string() +
                             "; move them into " + o.artifacts + " and remove that folder, or leave out --artifacts");
  } else {
    fs::create_directory_symlink(target, link);
  }
  return o.db_path;
}

}  // namespace

struct Coordinator::State {
  Options options;
  zmq::context_t context{1};
  zmq::socket_t router{context, zmq::socket_type::router};
  std::unique_ptr<zmq::socket_t> zap;  // the ZAP handler's socket, with CURVE keys
  std::string endpoint;
  jobs::JobStore store;
  sweep::Sweeps sweeps;

  std::map<int64_t, JobState> jobs;                  // unfinished jobs
  std::set<std::pair<int, int64_t>> queue;           // (-priority, id) of queued jobs
  std::map<LeaseKey, jobs::LeaseRow> leases;         // open leases
  std::map<std::string, WorkerState> workers;        // by worker id
  std::map<std::string, std::string> worker_by_peer;  // routing identity → worker id
  struct Outgoing {
    std::string peer;
    Message message;
    double placeable_since = -1;  // an ASSIGN: when its job could first have been placed
  };
  std::vector<Outgoing> outbox;  // sent after the turn's commit
  std::map<std::string, int64_t> wanted_files;  // sha256 → size: asked for in EVENTS_ACK, not yet whole
  std::map<std::string, Upload> uploads;        // by sha256
  std::vector<double> latencies_ms;
  // Calls from other threads of this process (Coordinator::call): queued under calls_mu, the
  // loop woken through wake_fd (an eventfd it polls); answered after the turn's commit.
  struct Call {
    std::string op;
    json args;
    std::promise<json> answer;
  };
  std::mutex calls_mu;
  std::deque<Call> calls;
  std::string http_url;  // under calls_mu: advertise_http()
  bool serving_ended = false;  // under calls_mu: no call is answered any more
  int wake_fd = -1;
  std::vector<std::pair<std::promise<json>, std::variant<json, std::exception_ptr>>> answers;  // after the commit
  bool placement_dirty = true;
  double now = 0;       // monotonic seconds, this turn
  double now_unix = 0;  // wall clock, this turn
  // Bad-message log lines, at most 20 per 10 s, then a count.
  double bad_window = 0;
  int bad_logged = 0, bad_suppressed = 0;

  explicit State(Options o) : options(std::move(o)), store(link_artifact_store(options)), sweeps(store, sweep_hooks()) {
    if (!options.log) options.log = [](const std::string& line) { std::cerr << "coordinator: " << line << std::endl; };
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  }
  ~State() {
    end_calls();
    if (wake_fd >= 0) close(wake_fd);
  }

  // Calls still queued when serving ends are refused, and later ones at once; calls taken but
  // not answered (the turn's commit failed) are refused too.
  void end_calls() {
    std::lock_guard<std::mutex> lock(calls_mu);
    serving_ended = true;
    for (Call& c : calls)
      c.answer.set_exception(std::make_exception_ptr(std::runtime_error("the coordinator has stopped")));
    calls.clear();
    for (auto& [promise, outcome] : answers)
      promise.set_exception(std::make_exception_ptr(std::runtime_error("the coordinator stopped before committing this")));
    answers.clear();
  }

  void log(const std::string& line) { options.log(line); }

  sweep::Hooks sweep_hooks() {
    sweep::Hooks h;
    h.submit = [this](const json& job) { return submit_job(jobs::parse_job_spec(job, util::brief(job.value("name", json("a trial")), 60))); };
    h.stop = [this](int64_t job, const std::string& status, const std::string& why) { stop_job(job, status, why); };
    h.capacity = [this](const jobs::JobSpec& spec) { return capacity_for(spec); };
    h.log = [this](const std::string& line) { log(line); };
    return h;
  }

  // --- start-up ----------------------------------------------------------------------------

  void recover() {
    now = util::monotonic_seconds();
    now_unix = util::unix_time();
    // Uploads cut off by the last stop start again from their first byte when asked for.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(store.content().root() + "/staging", ec))
      if (e.path().filename().string().rfind("incoming-", 0) == 0) std::filesystem::remove(e.path(), ec);
    for (jobs::WorkerRow& row : store.workers()) {
      WorkerState w;
      w.node.id = row.id;
      w.node.capacity = capacity_from(row.resources);
      w.heard = now;  // a worker alive at the crash has protocol::kLivenessSeconds to say HELLO again
      w.row = std::move(row);
      workers[w.row.id] = std::move(w);
    }
    for (jobs::JobRow& row : store.unfinished_jobs()) {
      JobState j;
      j.placeable_since = now;
      j.row = std::move(row);
      if (j.row.status == "queued") queue.insert({-j.row.spec.priority, j.row.id});
      jobs[j.row.id] = std::move(j);
    }
    for (jobs::LeaseRow& lease : store.open_leases()) {
      const LeaseKey key{lease.job_id, lease.attempt, lease.rank};
      auto job = jobs.find(lease.job_id);
      auto w = workers.find(lease.worker);
      if (w != workers.end() && job != jobs.end()) {
        w->second.node.hold(job->second.row.spec.resources, lease.gpus);
        if (lease.state == "running" && job->second.row.attempt == lease.attempt) {
          job->second.started = true;
          job->second.attempt_started = now;
        }
      }
      leases[key] = std::move(lease);
    }
    // Leases of a job that is no longer unfinished, or on a worker never recorded: nobody will
    // report them.
    std::vector<LeaseKey> orphans;
    for (const auto& [key, lease] : leases)
      if (!jobs.count(key.job) || !workers.count(lease.worker)) orphans.push_back(key);
    for (const LeaseKey& key : orphans) lose_lease(key, "its worker is unknown after a restart");
    sweeps.recover();
    store.commit();
    size_t alive = 0;
    for (const auto& [id, w] : workers) alive += w.row.status == "alive";
    log("recovered " + std::to_string(jobs.size()) + " unfinished jobs, " + std::to_string(leases.size()) +
        " running leases and " + std::to_string(alive) + " workers from " + options.db_path +
        (alive ? "; waiting up to " + std::to_string(static_cast<int>(protocol::kLivenessSeconds)) + " s for workers to say HELLO" : ""));
  }

  // --- sending -----------------------------------------------------------------------------

  void post(const std::string& peer, Type type, json body, double placeable_since = -1, std::string blob = {}, bool with_blob = false) {
    Message m;
    m.type = type;
    m.body = std::move(body);
    if (with_blob) m.blobs.push_back(std::move(blob));
    outbox.push_back({peer, std::move(m), placeable_since});
  }

  void post_to_worker(WorkerState& w, Type type, json body, double placeable_since = -1) {
    post(w.peer, type, std::move(body), placeable_since);
    w.sent = now;
  }

  void flush_outbox() {
    for (const Outgoing& o : outbox) {
      wire::send(router, o.message, &o.peer);
      if (o.placeable_since >= 0 && options.record_assign_latencies)
        latencies_ms.push_back((util::monotonic_seconds() - o.placeable_since) * 1000);
    }
    outbox.clear();
  }

  void log_bad(const std::string& peer, const std::string& what) {
    log_limited("dropped a message from peer " + wire::peer_name(peer) + ": " + what);
  }

  // Lines a rogue peer can cause: at most 20 per 10 s, then a count.
  void log_limited(const std::string& line) {
    if (now - bad_window > 10) {
      if (bad_suppressed) log("(" + std::to_string(bad_suppressed) + " more such lines not shown)");
      bad_window = now;
      bad_logged = bad_suppressed = 0;
    }
    if (bad_logged++ < 20) log(line);
    else ++bad_suppressed;
  }

  // --- jobs and leases ---------------------------------------------------------------------

  WorkerState* worker_of(const jobs::LeaseRow& lease) {
    auto it = workers.find(lease.worker);
    return it == workers.end() ? nullptr : &it->second;
  }

  // Closes an open lease: its resources go back to the worker.
  jobs::LeaseRow close_lease(const LeaseKey& key, const std::string& state) {
    jobs::LeaseRow lease = leases.at(key);
    leases.erase(key);
    lease.state = state;
    lease.ended_at = now_unix;
    store.save_lease(lease);
    if (WorkerState* w = worker_of(lease)) {
      auto job = jobs.find(key.job);
      if (job != jobs.end()) w->node.give_back(job->second.row.spec.resources, lease.gpus);
      w->freed = now;
      placement_dirty = true;
    }
    return lease;
  }

  bool attempt_open(int64_t job, int attempt) const {
    auto it = leases.lower_bound({job, attempt, 0});
    return it != leases.end() && it->first.job == job && it->first.attempt == attempt;
  }

  void cancel_open_ranks(int64_t job, int attempt) {
    const JobState& j = jobs.at(job);
    const int64_t grace_ms = std::llround(j.row.spec.cancel_grace_s * 1000);
    for (auto it = leases.lower_bound({job, attempt, 0}); it != leases.end() && it->first.job == job && it->first.attempt == attempt; ++it)
      if (WorkerState* w = worker_of(it->second); w && w->greeted())
        post_to_worker(*w, Type::kCancel, {{"job", job}, {"attempt", attempt}, {"rank", it->first.rank}, {"grace_ms", grace_ms}});
  }

  void finish_job(JobState& j, const std::string& status, const std::string& error) {
    j.row.status = status;
    j.row.error = error;
    j.row.finished_at = now_unix;
    store.save_job(j.row);
    const int64_t id = j.row.id;
    queue.erase({-j.row.spec.priority, id});
    jobs.erase(id);
    sweeps.job_finished(id, status, now_unix);
  }

  // Ends job `id` on request: at once while queued, else once its ranks have stopped (SIGTERM,
  // then SIGKILL after its grace). `status`: cancelled, or early-stopped (a sweep's ASHA).
  void stop_job(int64_t id, const std::string& status, const std::string& why) {
    auto it = jobs.find(id);
    if (it == jobs.end()) return;
    JobState& j = it->second;
    j.row.cancel_requested = true;
    j.row.stop_as = status == "cancelled" ? "" : status;
    if (j.row.status == "queued") return finish_job(j, status, why);
    j.row.error = why;
    store.save_job(j.row);
    cancel_open_ranks(id, j.row.attempt);
    log("job " + std::to_string(id) + ": stopping attempt " + std::to_string(j.row.attempt) + " (" + why + ")");
  }

  // How many copies of `spec` the greeted workers could hold at once.
  int capacity_for(const jobs::JobSpec& spec) {
    int64_t ranks = 0;
    for (const auto& [id, w] : workers) {
      if (!w.greeted()) continue;
      const scheduler::Capacity& c = w.node.capacity;
      int64_t k = spec.resources.cpu_slots > 0 ? c.cpu_slots / spec.resources.cpu_slots : 64;
      if (spec.resources.gpus > 0) k = std::min<int64_t>(k, static_cast<int64_t>(c.gpus.size()) / spec.resources.gpus);
      if (spec.resources.memory_mb > 0 && c.memory_mb > 0) k = std::min<int64_t>(k, c.memory_mb / spec.resources.memory_mb);
      ranks += k;
    }
    return static_cast<int>(std::min<int64_t>(ranks / spec.ranks, 1 << 20));
  }

  void requeue(JobState& j, double backoff_s) {
    j.row.status = "queued";
    j.row.not_before = backoff_s > 0 ? now_unix + backoff_s : 0;
    j.placeable_since = now + backoff_s;
    j.started = false;
    j.timed_out = false;
    j.ends.clear();
    j.lost_reason.clear();
    store.save_job(j.row);
    queue.insert({-j.row.spec.priority, j.row.id});
    placement_dirty = true;
  }

  // Every rank of the current attempt has ended: decide what the job does next.
  void end_attempt(JobState& j) {
    const jobs::JobSpec& spec = j.row.spec;
    std::string reason;
    bool lost = false;
    for (int r = 0; r < spec.ranks; ++r) {
      const RankEnd e = j.ends.count(r) ? j.ends[r] : RankEnd{true};
      if (e.ok()) continue;
      if (e.lost) {
        lost = true;
        if (reason.empty()) reason = j.lost_reason.empty() ? "its worker was lost" : j.lost_reason;
      } else if (reason.empty()) {
        reason = (spec.ranks > 1 ? "rank " + std::to_string(r) + ": " : "") + describe_end(e);
        j.row.exit_code = e.exit_code;
        j.row.signal = e.signal ? std::optional<int>(e.signal) : std::nullopt;
      }
    }
    if (reason.empty()) {
      j.row.exit_code = 0;
      j.row.signal.reset();
    }
    const std::string attempt = "attempt " + std::to_string(j.row.attempt);
    if (j.row.cancel_requested)
      return finish_job(j, j.row.stop_as.empty() ? "cancelled" : j.row.stop_as, j.row.error);  // stop_job's reason
    if (j.timed_out)
      return finish_job(j, "failed", attempt + " timed out after " + util::cut(std::to_string(spec.timeout_s), 8) + " s");
    if (reason.empty()) return finish_job(j, "succeeded", "");
    if (!j.started) {  // never ran: an ASSIGN nobody took
      log("job " + std::to_string(j.row.id) + " " + attempt + " did not start (" + reason + "); queued again");
      return requeue(j, 0);
    }
    ++j.row.restarts;
    if (j.row.restarts > spec.max_restarts)
      return finish_job(j, "failed", attempt + ": " + reason + "; gave up after " + std::to_string(spec.max_restarts) +
                                         " restarts (max_restarts)");
    const double backoff = lost ? 0 : std::min(kMaxBackoffS, std::pow(2.0, j.row.restarts - 1));
    j.row.error = attempt + ": " + reason;
    log("job " + std::to_string(j.row.id) + " " + attempt + ": " + reason + "; restart " + std::to_string(j.row.restarts) +
        " of " + std::to_string(spec.max_restarts) + (backoff > 0 ? " in " + std::to_string(static_cast<int>(backoff)) + " s" : " now"));
    requeue(j, backoff);
  }

  // A rank of some attempt ended (reported, or its worker lost).
  void rank_ended(const LeaseKey& key, const RankEnd& end, const std::string& lost_reason = "") {
    auto jit = jobs.find(key.job);
    if (jit == jobs.end() || jit->second.row.attempt != key.attempt) return;  // an older attempt's straggler
    JobState& j = jit->second;
    j.ends[key.rank] = end;
    if (end.lost && j.lost_reason.empty()) j.lost_reason = lost_reason;
    if (!end.ok()) cancel_open_ranks(key.job, key.attempt);  // a gang fails together
    if (!attempt_open(key.job, key.attempt)) end_attempt(j);
  }

  void lose_lease(const LeaseKey& key, const std::string& reason) {
    close_lease(key, "lost");
    rank_ended(key, RankEnd{true}, reason);
  }

  void assign(JobState& j, const std::vector<scheduler::RankPlacement>& placement) {
    const jobs::JobSpec& spec = j.row.spec;
    queue.erase({-spec.priority, j.row.id});
    ++j.row.attempt;
    j.row.status = "assigned";
    if (spec.kind == "command") j.row.run_uid.clear();  // a new attempt's client makes a new run (op_events binds it)
    j.started = false;
    j.ends.clear();
    j.lost_reason.clear();
    store.save_job(j.row);
    // Multi-rank jobs: torchrun's variables; the master is rank 0's host, at a port chosen from
    // the job and attempt in that worker's advertised range.
    WorkerState& master = workers.at(placement[0].worker);
    std::string master_addr = master.row.hostname;
    int port_lo = 29500, port_hi = 29999;
    const json& ports = master.row.resources.contains("ports") ? master.row.resources["ports"] : json();
    if (ports.is_array() && ports.size() == 2 && ports[0].is_number_integer() && ports[1].is_number_integer() &&
        ports[0].get<int>() > 0 && ports[1].get<int>() >= ports[0].get<int>() && ports[1].get<int>() < 65536) {
      port_lo = ports[0].get<int>();
      port_hi = ports[1].get<int>();
    }
    if (master.row.resources.contains("address") && master.row.resources["address"].is_string())
      master_addr = master.row.resources["address"].get<std::string>();
    const int master_port = port_lo + static_cast<int>((j.row.id * 31 + j.row.attempt) % (port_hi - port_lo + 1));
    const json resume = resume_point(j);
    std::map<std::string, int> local_rank;
    const json spec_json = jobs::to_json(spec);
    for (int r = 0; r < static_cast<int>(placement.size()); ++r) {
      const scheduler::RankPlacement& p = placement[r];
      jobs::LeaseRow lease;
      lease.job_id = j.row.id;
      lease.attempt = j.row.attempt;
      lease.rank = r;
      lease.worker = p.worker;
      lease.gpus = p.gpus;
      lease.assigned_at = now_unix;
      store.save_lease(lease);
      leases[{j.row.id, j.row.attempt, r}] = lease;
      std::string visible;
      for (int g : p.gpus) visible += (visible.empty() ? "" : ",") + std::to_string(g);
      json env = {{"I3LAB_JOB_ID", std::to_string(j.row.id)},
                  {"I3LAB_ATTEMPT", std::to_string(j.row.attempt)},
                  {"CUDA_VISIBLE_DEVICES", visible}};
      if (!spec.env.count("I3LAB_URL"))
        if (std::lock_guard<std::mutex> lock(calls_mu); !http_url.empty()) env["I3LAB_URL"] = http_url;
      // Set for every job, 0 of 1 alone: a worker that Slurm started inside a step carries
      // SLURM_PROCID and SLURM_NTASKS, which must not make its jobs ranks of that step.
      env["RANK"] = std::to_string(r);
      env["WORLD_SIZE"] = std::to_string(spec.ranks);
      env["LOCAL_RANK"] = std::to_string(local_rank[p.worker]++);
      if (spec.ranks > 1) {
        env["MASTER_ADDR"] = master_addr;
        env["MASTER_PORT"] = std::to_string(master_port);
      }
      WorkerState& w = workers.at(p.worker);
      json body = {{"job", j.row.id}, {"attempt", j.row.attempt}, {"rank", r}, {"session", w.session}, {"spec", spec_json}, {"env", env}};
      // Only rank 0 restores a checkpoint; it hands the other ranks their state itself (c10d).
      if (!resume.is_null() && r == 0) body["resume"] = resume;
      post_to_worker(w, Type::kAssign, std::move(body), std::max(j.placeable_since, w.freed));
    }
  }

  // Where a training job's new attempt starts: its run's newest checkpoint (ASSIGN's "resume":
  // the run's seed and the checkpoint's files), or null for a fresh run. A run left without a
  // checkpoint ended with its attempt: marked crashed, unless it said how it ended.
  json resume_point(JobState& j) {
    if (j.row.spec.kind != "train" || j.row.run_uid.empty()) return nullptr;
    json seed;
    try {
      seed = store.run_seed(j.row.run_uid);
    } catch (const tracker::NotFound&) {
      j.row.run_uid.clear();
      store.save_job(j.row);
      return nullptr;
    }
    // The run's newest checkpoint whose files are all here (a version whose files the job
    // deleted before they were sent is listed without them).
    const json* best = nullptr;
    std::string name;
    for (const json& a : seed["artifacts"]) {
      if (a["type"] != "checkpoint") continue;
      for (const json& v : a["versions"]) {
        if (v["run_uid"] != j.row.run_uid || (best && (*best)["created_at"].get<double>() > v["created_at"].get<double>())) continue;
        bool whole = true;
        for (const json& f : v["files"]) whole = whole && store.content().has(f["sha256"].get<std::string>());
        if (whole) best = &v, name = a["name"].get<std::string>();
      }
    }
    if (best) {
      json files = json::array();
      for (const json& f : (*best)["files"]) files.push_back({{"sha256", f["sha256"]}, {"size", f["size"]}});
      const std::string from = "v" + std::to_string((*best)["version"].get<int64_t>());
      const int64_t run_id = seed["run"]["id"].get<int64_t>();
      json resume = {{"run", run_id}, {"from", from}, {"seed", std::move(seed)}, {"files", std::move(files)}};
      if (resume.dump().size() + j.row.spec.config.dump().size() < protocol::kMaxBodyBytes - (64u << 10)) {
        log("job " + std::to_string(j.row.id) + " attempt " + std::to_string(j.row.attempt) + " resumes run " + j.row.run_uid +
            " from " + name + ":" + from);
        return resume;
      }
      log("job " + std::to_string(j.row.id) + ": run " + j.row.run_uid + " is too large to hand over in ASSIGN; the attempt starts a new run");
    }
    if (store.run_status(j.row.run_uid) == "running")
      store.apply_event(tracker::Event{j.row.run_uid, 0, tracker::RunFinished{"crashed", now_unix}});
    j.row.run_uid.clear();
    store.save_job(j.row);
    return nullptr;
  }

  void schedule() {
    if (!placement_dirty) return;
    placement_dirty = false;
    std::vector<scheduler::Node*> nodes;
    for (auto& [id, w] : workers)
      if (w.greeted()) nodes.push_back(&w.node);
    if (nodes.empty()) return;
    std::vector<int64_t> placeable;
    for (const auto& [key, id] : queue) placeable.push_back(id);
    for (int64_t id : placeable) {
      bool any_free = false;
      for (const scheduler::Node* n : nodes) any_free = any_free || n->used_slots < n->capacity.cpu_slots;
      JobState& j = jobs.at(id);
      if (!any_free && j.row.spec.resources.cpu_slots > 0) continue;
      if (j.row.not_before > now_unix) {
        placement_dirty = true;  // look again next turn
        continue;
      }
      if (auto placement = scheduler::place(j.row.spec, nodes)) assign(j, *placement);
    }
  }

  // --- messages from workers ---------------------------------------------------------------

  void on_hello(const std::string& peer, const json& body) {
    const std::string id = body["worker"].get<std::string>();
    if (id.empty() || id.size() > 255) return log_bad(peer, "HELLO: \"worker\" must be 1 to 255 bytes");
    WorkerState& w = workers[id];
    const bool known = !w.row.id.empty();
    if (!known) {
      w.row.id = id;
      w.row.first_seen = now_unix;
    }
    if (!w.peer.empty() && w.peer != peer) worker_by_peer.erase(w.peer);
    w.peer = peer;
    worker_by_peer[peer] = id;
    w.session = int_field(body, "session");
    w.heard = now;
    w.row.hostname = body["hostname"].get<std::string>();
    w.row.resources = body["resources"];
    w.row.status = "alive";
    w.row.last_seen = now_unix;
    w.node.id = id;
    w.node.capacity = capacity_from(w.row.resources);
    store.save_worker(w.row);
    post_to_worker(w, Type::kWelcome, {{"worker", id}, {"session", w.session}, {"heartbeat_ms", protocol::kHeartbeatInterval.count()}});
    log("worker " + id + " (" + util::cut(w.row.hostname, util::kQuoteChars) + ", " + std::to_string(w.node.capacity.cpu_slots) + " slots, " +
        std::to_string(w.node.capacity.gpus.size()) + " GPUs) " + (known ? "is back" : "joined") + ", session " +
        std::to_string(w.session));

    for (const json& e : body["exited"])
      if (e.is_object()) on_exited(w, e);
    std::set<LeaseKey> running;
    for (const json& r : body["running"]) {
      if (!r.is_object()) continue;
      const LeaseKey key{int_field(r, "job"), static_cast<int>(int_field(r, "attempt")), static_cast<int>(int_field(r, "rank"))};
      running.insert(key);
      auto it = leases.find(key);
      if (it == leases.end() || it->second.worker != id) {
        // Not ours to run any more (re-queued while this worker was away, or cancelled).
        post_to_worker(w, Type::kCancel, {{"job", key.job}, {"attempt", key.attempt}, {"rank", key.rank}, {"grace_ms", 0}});
      } else if (it->second.state == "assigned") {
        mark_started(key);
      }
    }
    std::vector<LeaseKey> forgotten;
    for (const auto& [key, lease] : leases)
      if (lease.worker == id && !running.count(key)) forgotten.push_back(key);
    for (const LeaseKey& key : forgotten) lose_lease(key, "worker " + id + " no longer runs it");
    placement_dirty = true;
  }

  void mark_started(const LeaseKey& key) {
    jobs::LeaseRow& lease = leases.at(key);
    lease.state = "running";
    lease.started_at = now_unix;
    store.save_lease(lease);
    auto jit = jobs.find(key.job);
    if (jit == jobs.end() || jit->second.row.attempt != key.attempt) return;
    JobState& j = jit->second;
    if (!j.started) {
      j.started = true;
      j.attempt_started = now;
      j.row.status = "running";
      j.row.started_at = now_unix;
      store.save_job(j.row);
    }
  }

  void on_started(WorkerState& w, const json& body) {
    const LeaseKey key{body["job"].get<int64_t>(), body["attempt"].get<int>(), static_cast<int>(int_field(body, "rank"))};
    auto it = leases.find(key);
    if (it == leases.end() || it->second.worker != w.row.id) {
      post_to_worker(w, Type::kCancel, {{"job", key.job}, {"attempt", key.attempt}, {"rank", key.rank}, {"grace_ms", 0}});
      return;
    }
    if (it->second.state == "assigned") mark_started(key);
  }

  void on_exited(WorkerState& w, const json& body) {
    if (!body.contains("job") || !body["job"].is_number_integer() || !body.contains("attempt") || !body["attempt"].is_number_integer())
      return log_bad(w.peer, "EXITED without an integer job and attempt");
    const LeaseKey key{body["job"].get<int64_t>(), body["attempt"].get<int>(), static_cast<int>(int_field(body, "rank"))};
    post_to_worker(w, Type::kExitedAck, {{"job", key.job}, {"attempt", key.attempt}, {"rank", key.rank}});
    auto it = leases.find(key);
    if (it == leases.end() || it->second.worker != w.row.id) return;  // reported before, or not ours
    RankEnd end;
    end.exit_code = static_cast<int>(int_field(body, "exit_code"));
    end.signal = static_cast<int>(int_field(body, "signal"));
    if (it->second.state == "assigned") mark_started(key);  // it ran, however briefly
    jobs::LeaseRow& lease = leases.at(key);
    lease.exit_code = end.exit_code;
    lease.signal = end.signal ? std::optional<int>(end.signal) : std::nullopt;
    close_lease(key, "exited");
    rank_ended(key, end);
  }

  void on_log(WorkerState& w, const json& body) {
    const int64_t job = body["job"].get<int64_t>();
    const int attempt = body["attempt"].get<int>();
    const int64_t first = body["first"].get<int64_t>();
    const int64_t rank = int_field(body, "rank");
    const json& lines = body["lines"];
    if (rank < 0 || rank >= jobs::kMaxRanks) return log_bad(w.peer, "LOG: \"rank\" is outside 0.." + std::to_string(jobs::kMaxRanks - 1));
    if (first < 0 || first > kMaxLogLine) return log_bad(w.peer, "LOG: \"first\" is outside 0.." + std::to_string(kMaxLogLine));
    auto jit = jobs.find(job);
    const int newest = jit != jobs.end() ? jit->second.row.attempt : store.newest_attempt(job).value_or(0);
    if (attempt < 1 || attempt > newest) return log_bad(w.peer, "LOG for job " + std::to_string(job) + " attempt " + std::to_string(attempt) + ", which does not exist");
    std::vector<jobs::LogLine> rows;
    for (size_t i = 0; i < lines.size(); ++i) {
      const json& l = lines[i];
      if (!l.is_array() || l.size() != 3 || !l[0].is_string() || !l[1].is_number() || !l[2].is_string() ||
          (l[0] != "stdout" && l[0] != "stderr"))
        return log_bad(w.peer, "LOG: line " + std::to_string(i) + " is not [\"stdout\"|\"stderr\", wall, text]");
      std::string text = l[2].get<std::string>();
      if (text.size() > protocol::kMaxLogLineBytes) text = util::cut(text, protocol::kMaxLogLineBytes);
      rows.push_back({first + static_cast<int64_t>(i), l[0].get<std::string>(), l[1].get<double>(), std::move(text)});
    }
    store.append_log(job, attempt, static_cast<int>(rank), rows);
    post_to_worker(w, Type::kLogAck,
                   {{"job", job}, {"attempt", attempt}, {"rank", rank}, {"next", first + static_cast<int64_t>(rows.size())}});
  }

  // Tracker events relayed from an attempt's database (protocol.h, tracker/relay/relay.h).
  void on_events(WorkerState& w, const json& body) {
    const int64_t job = body["job"].get<int64_t>();
    const int attempt = body["attempt"].get<int>();
    const int64_t rank = int_field(body, "rank");
    const json& entries = body["events"];
    if (rank < 0 || rank >= jobs::kMaxRanks) return log_bad(w.peer, "EVENTS: \"rank\" is outside 0.." + std::to_string(jobs::kMaxRanks - 1));
    // Entries are [N, EVENT] with N growing; an EVENT that is not an object is skipped below.
    for (size_t i = 0; i < entries.size(); ++i)
      if (!entries[i].is_array() || entries[i].size() != 2 || !entries[i][0].is_number_integer() ||
          (i > 0 && entries[i][0].get<int64_t>() <= entries[i - 1][0].get<int64_t>()))
        return log_bad(w.peer, "EVENTS: entry " + std::to_string(i) + " is not [N, EVENT] with N growing");
    std::vector<std::string> gone;
    if (body.contains("gone") && body["gone"].is_array())
      for (const json& g : body["gone"])
        if (is_sha256(g)) gone.push_back(g.get<std::string>());
    auto jit = jobs.find(job);
    const int newest = jit != jobs.end() ? jit->second.row.attempt : store.newest_attempt(job).value_or(0);
    int64_t upto = entries.empty() ? 0 : entries[0][0].get<int64_t>() - 1;
    json missing = json::array();
    const std::string label = "job " + std::to_string(job) + " attempt " + std::to_string(attempt);
    for (const std::string& sha : gone) wanted_files.erase(sha);
    if (attempt < 1 || attempt > newest) {
      // Of a job this database does not have (a coordinator started on another database): they
      // can never apply. Acknowledged, or the worker would send them forever.
      log_bad(w.peer, "EVENTS for job " + std::to_string(job) + " attempt " + std::to_string(attempt) + ", which does not exist");
      upto = entries.empty() ? upto : entries.back()[0].get<int64_t>();
    } else if (attempt != newest) {
      // A late batch of an attempt that was given up: its run went on (or began again) from
      // what was stored when the next attempt was placed. Acknowledged, not applied.
      if (!entries.empty()) log(label + ": dropped " + std::to_string(entries.size()) + " tracker events sent after attempt " + std::to_string(newest) + " began");
      upto = entries.empty() ? upto : entries.back()[0].get<int64_t>();
    } else {
      for (const json& entry : entries) {
        const int64_t n = entry[0].get<int64_t>();
        tracker::Event event;
        try {
          event = tracker::event_from_json(entry[1]);
          const auto* deleted = std::get_if<tracker::ArtifactDeleted>(&event.body);
          if (deleted && store.artifact_used(deleted->ref)) {
            // The job pruned a version other runs used here (lineage): kept here, its number
            // still taken, so the job's later versions keep theirs.
            log(label + ": kept " + deleted->ref + ", which the job deleted: other runs used it");
          } else {
            const tracker::Applied applied = store.apply_event(event, gone);
            if (std::holds_alternative<tracker::RunCreated>(event.body) && !applied.duplicate) bind_run(job, event.run);
            if (const auto* m = std::get_if<tracker::Metrics>(&event.body); m && !applied.duplicate)
              sweeps.metrics(job, m->step, m->values);
          }
        } catch (const tracker::DbError&) {
          throw;  // the database, not the event: nothing more is promised to anyone
        } catch (const tracker::MissingContent&) {
          for (const tracker::ArtifactFile& f : std::get<tracker::ArtifactLogged>(event.body).files)
            if (!store.content().has(f.sha256) && std::find(gone.begin(), gone.end(), f.sha256) == gone.end()) {
              wanted_files[f.sha256] = f.size;
              missing.push_back({{"sha256", f.sha256}, {"size", f.size}});
            }
          break;
        } catch (const std::exception& e) {
          // It can never apply (malformed, or naming what is not here): skipped, or the relay
          // would stop at it for good.
          log(label + ": skipped tracker event " + std::to_string(n) + ": " + e.what());
        }
        upto = n;
      }
    }
    json ack = {{"job", job}, {"attempt", attempt}, {"rank", rank}, {"upto", upto}};
    if (!missing.empty()) ack["missing"] = std::move(missing);
    post_to_worker(w, Type::kEventsAck, std::move(ack));
  }

  // A job's run: what `i3lab jobs` shows and what a retry resumes.
  void bind_run(int64_t job, const std::string& run_uid) {
    auto jit = jobs.find(job);
    if (jit != jobs.end()) {
      jit->second.row.run_uid = run_uid;
      store.save_job(jit->second.row);
    } else if (std::optional<jobs::JobRow> row = store.job(job)) {
      row->run_uid = run_uid;
      store.save_job(*row);
    }
  }

  void on_upload(WorkerState& w, const Message& m) {
    const json& body = m.body;
    if (!is_sha256(body["sha256"]) || m.blobs.size() != 1) return log_bad(w.peer, "UPLOAD: not a sha256 and one chunk");
    const std::string sha = body["sha256"].get<std::string>();
    const int64_t offset = body["offset"].get<int64_t>(), size = body["size"].get<int64_t>();
    auto reply = [&](int64_t have, const std::string& error = "") {
      json r = {{"sha256", sha}, {"have", have}};
      if (!error.empty()) r["error"] = error;
      post_to_worker(w, Type::kUploadAck, std::move(r));
    };
    auto wanted = wanted_files.find(sha);
    if (store.content().has(sha)) {
      wanted_files.erase(sha);
      return reply(size);
    }
    if (wanted == wanted_files.end() || wanted->second != size) {
      // Asked for before this coordinator restarted, perhaps: the events say again what is needed.
      json r = {{"sha256", sha}, {"have", 0}, {"error", "file " + sha + " was not asked for"}, {"resend_events", true}};
      return post_to_worker(w, Type::kUploadAck, std::move(r));
    }
    auto it = uploads.find(sha);
    bool damaged = false;
    try {
      if (it == uploads.end()) it = uploads.emplace(sha, Upload{std::make_unique<tracker::IncomingFile>(store.content(), sha, size), now}).first;
      Upload& u = it->second;
      u.last_chunk = now;
      if (offset != u.file->have()) return reply(u.file->have());
      if (!u.file->append(m.blobs[0])) return reply(u.file->have());
      uploads.erase(it);
      wanted_files.erase(sha);
      reply(size);
    } catch (const std::exception& e) {
      damaged = dynamic_cast<const tracker::DamagedContent*>(&e) != nullptr;
      if (it != uploads.end()) uploads.erase(it);
      log("upload of " + sha + " from worker " + w.row.id + " failed: " + e.what());
      // Bytes that hash to something else came from a damaged file: the worker cannot send it.
      // Anything else is this side's trouble (a full disk): the worker tries again.
      json r = {{"sha256", sha}, {"have", 0}, {"error", e.what()}};
      if (!damaged) r["resend_events"] = true;
      post_to_worker(w, Type::kUploadAck, std::move(r));
    }
  }

  // Uploads abandoned (the worker lost, or it gave the file up) are dropped after a minute.
  void drop_idle_uploads() {
    for (auto it = uploads.begin(); it != uploads.end();) it = now - it->second.last_chunk < 60 ? std::next(it) : uploads.erase(it);
  }

  void on_fetch(WorkerState& w, const json& body) {
    if (!is_sha256(body["sha256"])) return log_bad(w.peer, "FETCH: \"sha256\" is not 64 lowercase hex digits");
    const std::string sha = body["sha256"].get<std::string>();
    const int64_t offset = body["offset"].get<int64_t>();
    json r = {{"sha256", sha}, {"offset", offset}, {"size", 0}};
    int64_t size = 0;
    std::string chunk;
    try {
      chunk = store.content().read_chunk(sha, offset, protocol::kArtifactChunkBytes, &size);
    } catch (const std::exception& e) {
      r["error"] = std::string("the coordinator's artifact store: ") + e.what();
      return post_to_worker(w, Type::kFetchData, std::move(r));
    }
    r["size"] = size;
    post(w.peer, Type::kFetchData, std::move(r), -1, std::move(chunk), true);
    w.sent = now;
  }

  void worker_lost(WorkerState& w, const std::string& why) {
    log("worker " + w.row.id + " lost: " + why + "; its jobs go back to the queue");
    w.row.status = "lost";
    w.session = -1;
    worker_by_peer.erase(w.peer);
    store.save_worker(w.row);
    std::vector<LeaseKey> keys;
    for (const auto& [key, lease] : leases)
      if (lease.worker == w.row.id) keys.push_back(key);
    for (const LeaseKey& key : keys) lose_lease(key, "worker " + w.row.id + " was lost (" + why + ")");
  }

  // --- requests from clients ---------------------------------------------------------------

  json job_summary(const jobs::JobRow& row) {
    std::string worker;
    for (const jobs::LeaseRow& l : store.leases_of(row.id, row.attempt))
      if (worker.find(l.worker) == std::string::npos) worker += (worker.empty() ? "" : ",") + l.worker;
    json j = {{"id", row.id},
              {"name", jobs::display_name(row.spec)},
              {"kind", row.spec.kind},
              {"status", row.status},
              {"priority", row.spec.priority},
              {"attempts", row.attempt},
              {"restarts", row.restarts},
              {"worker", worker},
              {"submitted_at", row.submitted_at},
              {"started_at", row.started_at ? json(*row.started_at) : json()},
              {"finished_at", row.finished_at ? json(*row.finished_at) : json()},
              {"exit_code", row.exit_code ? json(*row.exit_code) : json()},
              {"signal", row.signal ? json(*row.signal) : json()},
              {"error", row.error},
              {"run", row.run_uid}};
    return j;
  }

  json op_submit(const json& args) {
    if (!args.contains("jobs") || !args["jobs"].is_array() || args["jobs"].empty())
      throw std::invalid_argument("submit: \"jobs\" must be a non-empty array of job specs");
    if (args["jobs"].size() > 100000) throw std::invalid_argument("submit: at most 100000 jobs at once");
    std::vector<jobs::JobSpec> specs;
    for (size_t i = 0; i < args["jobs"].size(); ++i)
      specs.push_back(jobs::parse_job_spec(args["jobs"][i], "job " + std::to_string(i)));
    json ids = json::array();
    for (const jobs::JobSpec& spec : specs) ids.push_back(submit_job(spec));
    return {{"ids", ids}};
  }

  int64_t submit_job(const jobs::JobSpec& spec) {
    const int64_t id = store.insert_job(spec, now_unix);
    JobState j;
    j.row.id = id;
    j.row.spec = spec;
    j.row.submitted_at = now_unix;
    j.placeable_since = now;
    jobs[id] = std::move(j);
    queue.insert({-spec.priority, id});
    placement_dirty = true;
    return id;
  }

  json op_jobs(const json& args) {
    const int64_t limit = std::clamp<int64_t>(int_field(args, "limit", 1000), 1, 1000000);
    const std::string status = args.contains("status") && args["status"].is_string() ? args["status"].get<std::string>() : "";
    json out = json::array();
    if (args.contains("ids") && args["ids"].is_array()) {
      for (const json& id : args["ids"])
        if (id.is_number_integer())
          if (auto row = store.job(id.get<int64_t>())) out.push_back(job_summary(*row));
      return out;
    }
    for (const jobs::JobRow& row : store.list_jobs(limit, status)) out.push_back(job_summary(row));
    return out;
  }

  json op_counts() {
    json counts = {{"queued", 0}, {"assigned", 0}, {"running", 0}};
    for (const auto& [id, j] : jobs) counts[j.row.status] = counts.value(j.row.status, 0) + 1;
    for (const auto& [status, n] : store.final_counts()) counts[status] = n;
    return counts;
  }

  json op_cancel(const json& args) {
    const int64_t id = int_field(args, "id", -1);
    auto it = jobs.find(id);
    if (it == jobs.end()) {
      const auto row = store.job(id);
      if (!row) throw std::invalid_argument("no job " + std::to_string(id));
      return {{"id", id}, {"status", row->status}, {"note", "already " + row->status}};
    }
    stop_job(id, "cancelled", "cancelled by request");
    if (!jobs.count(id)) return {{"id", id}, {"status", "cancelled"}};
    const jobs::JobRow& row = jobs.at(id).row;
    return {{"id", id}, {"status", row.status}, {"note", "stopping (SIGTERM, then SIGKILL after " +
                                                      util::cut(std::to_string(row.spec.cancel_grace_s), 6) + " s)"}};
  }

  json op_workers() {
    json out = json::array();
    for (const auto& [id, w] : workers) {
      json running = json::array();
      for (const auto& [key, lease] : leases)
        if (lease.worker == id) running.push_back(key.job);
      out.push_back({{"id", id},
                     {"hostname", w.row.hostname},
                     {"status", w.row.status},
                     {"cpu_slots", w.node.capacity.cpu_slots},
                     {"used_slots", w.node.used_slots},
                     {"memory_mb", w.node.capacity.memory_mb},
                     {"gpus", w.row.resources.value("gpus", json::array())},
                     {"used_gpus", w.node.used_gpus},
                     {"labels", w.node.capacity.labels},
                     {"last_seen", w.row.last_seen},
                     {"jobs", running}});
    }
    return out;
  }

  json op_logs(const json& args) {
    const int64_t id = int_field(args, "id", -1);
    const auto row = store.job(id);
    if (!row) throw std::invalid_argument("no job " + std::to_string(id));
    int attempt = static_cast<int>(int_field(args, "attempt", 0));
    if (attempt <= 0) attempt = row->attempt;
    const int rank = static_cast<int>(std::clamp<int64_t>(int_field(args, "rank", 0), 0, jobs::kMaxRanks - 1));
    const int64_t after = int_field(args, "after", -1);
    const int64_t limit = std::clamp<int64_t>(int_field(args, "limit", 10000), 1, 100000);
    json lines = json::array();
    size_t bytes = 0;  // a page stays well inside one message; the client asks for the next
    for (const jobs::LogLine& l : store.log_lines(id, attempt, rank, after, limit)) {
      if (bytes > protocol::kMaxBodyBytes / 2) break;
      bytes += l.text.size() + 64;
      lines.push_back({l.line, l.stream, l.wall, l.text});
    }
    return {{"id", id}, {"attempt", attempt}, {"rank", rank}, {"attempts", row->attempt}, {"status", row->status}, {"lines", lines}};
  }

  json dispatch(const std::string& op, const json& args) {
    if (op == "submit") return op_submit(args);
    if (op == "jobs") return op_jobs(args);
    if (op == "counts") return op_counts();
    if (op == "cancel") return op_cancel(args);
    if (op == "workers") return op_workers();
    if (op == "logs") return op_logs(args);
    if (op == "events") return op_events(args);
    if (op == "sweep_create") return sweeps.create(args.value("definition", json()), now_unix);
    if (op == "sweeps") return sweeps.list(std::clamp<int64_t>(int_field(args, "limit", 100), 1, 10000));
    if (op == "sweep_show") return sweeps.show(int_field(args, "id", -1));
    if (op == "sweep_rerun") return sweeps.rerun_failed(int_field(args, "id", -1), now_unix);
    if (op == "sweep_cancel") return sweeps.cancel(int_field(args, "id", -1), now_unix);
    if (op == "ping") return json::object();
    throw std::invalid_argument("unknown operation \"" + util::cut(op, 40) +
                                "\" (submit, jobs, counts, cancel, workers, logs, events, sweep_create, sweeps, sweep_show, "
                                "sweep_rerun, sweep_cancel, ping)");
  }

  void on_request(const std::string& peer, const json& body) {
    const std::string op = body["op"].get<std::string>();
    const json& args = body["args"];
    const json id = body.contains("id") && body["id"].is_number_integer() ? body["id"] : json();
    try {
      json reply = {{"result", dispatch(op, args)}, {"id", id}};
      // A body over the limit would be dropped by the client's transport, which would then
      // wait for an answer that never comes.
      const size_t bytes = util::dump_json(reply).size();
      if (bytes > protocol::kMaxBodyBytes)
        throw std::invalid_argument(op + ": the answer is " + std::to_string(bytes) + " bytes, over the protocol's " +
                                    std::to_string(protocol::kMaxBodyBytes) + "; ask for less (a smaller --limit)");
      post(peer, Type::kReply, std::move(reply));
    } catch (const tracker::DbError&) {
      throw;  // the disk, not the request: stop
    } catch (const std::exception& e) {
      post(peer, Type::kError, {{"error", e.what()}, {"id", id}});
    }
  }

  // Calls from this process's other threads (Coordinator::call), answered after the commit.
  void take_calls() {
    uint64_t ignored;
    while (read(wake_fd, &ignored, sizeof ignored) > 0) {
    }
    std::deque<Call> taken;
    {
      std::lock_guard<std::mutex> lock(calls_mu);
      while (!calls.empty() && taken.size() < kMaxCallsPerTurn) {
        taken.push_back(std::move(calls.front()));
        calls.pop_front();
      }
      if (!calls.empty()) {  // the rest next turn, which then does not wait
        const uint64_t one = 1;
        (void)!write(wake_fd, &one, sizeof one);
      }
    }
    for (Call& c : taken) {
      try {
        answers.emplace_back(std::move(c.answer), dispatch(c.op, c.args));
      } catch (const tracker::DbError&) {
        throw;
      } catch (const std::exception& e) {
        answers.emplace_back(std::move(c.answer), std::make_exception_ptr(std::invalid_argument(e.what())));
      }
    }
  }

  void send_answers() {
    for (auto& [promise, outcome] : answers) {
      if (auto* result = std::get_if<json>(&outcome)) promise.set_value(std::move(*result));
      else promise.set_exception(std::get<std::exception_ptr>(outcome));
    }
    answers.clear();
  }

  // Tracker events from a client (the HTTP API): {"events": [EVENT…]} in the JSON form of
  // tracker/events/events.h. All are checked first: one malformed event refuses the batch,
  // naming its index. Each then applies in its own savepoint; one that cannot (a metric for a
  // run this database lacks) is listed in "errors" and the others stand. Answer: {"applied",
  // "duplicates", "errors": [{"index", "error"}], "runs": {UID: run id}}.
  json op_events(const json& args) {
    if (!args.contains("events") || !args["events"].is_array())
      throw std::invalid_argument("events: \"events\" must be an array of tracker events");
    std::vector<tracker::Event> events;
    for (size_t i = 0; i < args["events"].size(); ++i) {
      try {
        events.push_back(tracker::event_from_json(args["events"][i]));
      } catch (const std::exception& e) {
        throw std::invalid_argument("events[" + std::to_string(i) + "]: " + e.what());
      }
    }
    // A job's own client (I3LAB_JOB_ID) names it: the runs it creates are the job's, and their
    // metrics reach the job's sweep as a worker's relayed events do.
    const int64_t job = int_field(args, "job", 0);
    auto own = jobs.find(job);
    json errors = json::array(), runs = json::object();
    int64_t applied = 0, duplicates = 0;
    for (size_t i = 0; i < events.size(); ++i) {
      try {
        const tracker::Applied a = store.apply_event(events[i]);
        (a.duplicate ? duplicates : applied) += 1;
        if (a.run_id && !events[i].run.empty()) runs[events[i].run] = a.run_id;
        if (own != jobs.end() && !a.duplicate) {
          if (std::holds_alternative<tracker::RunCreated>(events[i].body) && own->second.row.run_uid.empty()) bind_run(job, events[i].run);
          const auto* m = std::get_if<tracker::Metrics>(&events[i].body);
          if (m && own->second.row.run_uid == events[i].run) sweeps.metrics(job, m->step, m->values);
          own = jobs.find(job);  // a metric may have stopped the job at once
        }
      } catch (const tracker::DbError&) {
        throw;
      } catch (const std::exception& e) {
        errors.push_back({{"index", i}, {"error", e.what()}});
      }
    }
    return {{"applied", applied}, {"duplicates", duplicates}, {"errors", errors}, {"runs", runs}};
  }

  // --- the loop ----------------------------------------------------------------------------

  void handle(const wire::Received& r) {
    if (!r.decoded.ok()) return log_bad(r.peer, r.decoded.reason);
    const Message& m = r.decoded.message;
    if (m.type == Type::kRequest) return on_request(r.peer, m.body);
    if (m.type == Type::kHello) return on_hello(r.peer, m.body);
    auto wid = worker_by_peer.find(r.peer);
    if (wid == worker_by_peer.end() || !workers.at(wid->second).greeted()) {
      // A worker this coordinator does not know (it restarted, or declared the worker lost):
      // everything it says waits for its HELLO, which re-sends what matters.
      if (m.type == Type::kHeartbeat || m.type == Type::kStarted || m.type == Type::kExited || m.type == Type::kLog ||
          m.type == Type::kEvents || m.type == Type::kUpload || m.type == Type::kFetch)
        post(r.peer, Type::kResync, json::object());
      return;
    }
    WorkerState& w = workers.at(wid->second);
    w.heard = now;
    w.row.last_seen = now_unix;
    switch (m.type) {
      case Type::kHeartbeat: break;
      case Type::kStarted: on_started(w, m.body); break;
      case Type::kExited: on_exited(w, m.body); break;
      case Type::kLog: on_log(w, m.body); break;
      case Type::kEvents: on_events(w, m.body); break;
      case Type::kUpload: on_upload(w, m); break;
      case Type::kFetch: on_fetch(w, m.body); break;
      case Type::kBye: {
        log("worker " + w.row.id + " said BYE");
        worker_lost(w, "it left");
        w.row.status = "left";
        store.save_worker(w.row);
        break;
      }
      default: log_bad(r.peer, std::string(protocol::type_name(m.type)) + " is not a message a worker sends"); break;
    }
  }

  void tick() {
    drop_idle_uploads();
    for (auto& [id, w] : workers) {
      if (w.row.status != "alive") continue;
      if (now - w.heard > protocol::kLivenessSeconds) {
        worker_lost(w, "silent for " + std::to_string(static_cast<int>(now - w.heard)) + " s");
        continue;
      }
      if (w.greeted() && now - w.sent >= protocol::kHeartbeatSeconds) post_to_worker(w, Type::kHeartbeat, json::object());
    }
    for (auto& [id, j] : jobs) {
      if (j.started && !j.timed_out && j.row.spec.timeout_s > 0 && now - j.attempt_started > j.row.spec.timeout_s) {
        j.timed_out = true;
        log("job " + std::to_string(id) + " attempt " + std::to_string(j.row.attempt) + " ran past its timeout_s; stopping it");
        cancel_open_ranks(id, j.row.attempt);
      }
    }
  }

  // Admits or refuses a client's CURVE key (keys.h): every handshake waits for this answer.
  void answer_zap() {
    while (true) {
      std::vector<std::string> request;
      zmq::message_t part;
      if (!zap->recv(part, zmq::recv_flags::dontwait)) return;
      request.push_back(part.to_string());
      while (part.more()) {
        (void)zap->recv(part);
        request.push_back(part.to_string());
      }
      std::string who;
      bool admitted = false;
      const std::vector<std::string> reply = keys::zap_reply(request, options.allowed, &who, &admitted);
      if (!admitted) log_limited("refused " + who + ": " + reply[3]);
      for (size_t i = 0; i < reply.size(); ++i)
        zap->send(zmq::buffer(reply[i]), i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }

  void turn(int poll_ms) {
    zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, wake_fd, ZMQ_POLLIN, 0},
                               {zap ? zap->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
    wire::poll(items, zap ? 3 : 2, std::chrono::milliseconds(poll_ms));
    if (zap) answer_zap();
    now = util::monotonic_seconds();
    now_unix = util::unix_time();
    for (int i = 0; i < kMaxMessagesPerTurn; ++i) {
      std::optional<wire::Received> r = wire::receive(router, true);
      if (!r) break;
      try {
        handle(*r);
      } catch (const nlohmann::json::exception& e) {  // a field of a kind decode() does not check
        log_bad(r->peer, std::string(protocol::type_name(r->decoded.message.type)) + ": " + e.what());
      }
    }
    take_calls();
    tick();
    sweeps.top_up(now_unix);
    schedule();
    store.commit();
    flush_outbox();
    send_answers();
  }
};

Coordinator::Coordinator(Options options) : state_(std::make_unique<State>(std::move(options))) {
  State& s = *state_;
  if (!wire::is_loopback(s.options.listen) && !s.options.insecure && !s.options.key)
    throw std::runtime_error("refusing to listen on " + s.options.listen +
                             " without worker keys: anyone who can reach it could run commands as this user. "
                             "Give --key and --allow (see i3lab keygen), listen on tcp://127.0.0.1:PORT, "
                             "or give --insecure on a network you trust");
  if (s.options.key && s.options.allowed.empty())
    throw std::runtime_error("--key needs --allow FILE: the public keys of the workers and clients to let in");
  s.recover();
  wire::configure(s.router);
  if (s.options.key) {
    s.zap = std::make_unique<zmq::socket_t>(s.context, zmq::socket_type::rep);
    s.zap->set(zmq::sockopt::linger, 0);
    s.zap->bind(keys::kZapEndpoint);
    keys::make_server(s.router, *s.options.key);
  }
  s.router.set(zmq::sockopt::router_handover, 1);
  try {
    s.router.bind(s.options.listen);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("cannot listen on " + s.options.listen + ": " + e.what() +
                             (e.num() == EADDRINUSE ? " (another coordinator? choose another port with --listen)" : ""));
  }
  s.endpoint = s.router.get(zmq::sockopt::last_endpoint);
}

Coordinator::~Coordinator() = default;

const std::string& Coordinator::endpoint() const { return state_->endpoint; }

void Coordinator::serve(const std::atomic<bool>& stop) {
  struct EndCalls {
    State& s;
    ~EndCalls() { s.end_calls(); }
  } end_calls{*state_};
  while (!stop.load()) state_->turn(100);
  state_->store.commit();
}

std::future<nlohmann::json> Coordinator::call(const std::string& op, nlohmann::json args) {
  State& s = *state_;
  State::Call c{op, std::move(args), {}};
  std::future<json> answer = c.answer.get_future();
  {
    std::lock_guard<std::mutex> lock(s.calls_mu);
    if (s.serving_ended) {
      c.answer.set_exception(std::make_exception_ptr(std::runtime_error("the coordinator has stopped")));
      return answer;
    }
    s.calls.push_back(std::move(c));
  }
  const uint64_t one = 1;
  (void)!write(s.wake_fd, &one, sizeof one);
  return answer;
}

const std::vector<double>& Coordinator::assign_latencies_ms() const { return state_->latencies_ms; }

void Coordinator::advertise_http(const std::string& url) {
  std::lock_guard<std::mutex> lock(state_->calls_mu);
  state_->http_url = url;
}

}  // namespace coordinator
