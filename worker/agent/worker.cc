#include "worker/agent/worker.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <zmq.hpp>

#include "common/util/clock.h"
#include "common/util/files.h"
#include "common/util/json.h"
#include "coordinator/jobs/job_spec.h"
#include "coordinator/protocol/protocol.h"
#include "coordinator/wire/wire.h"
#include "tracker/db/content.h"
#include "tracker/db/schema.h"
#include "tracker/relay/relay.h"
#include "worker/process/spawn.h"

extern char** environ;

namespace worker {
namespace {

using nlohmann::json;
using protocol::Message;
using protocol::Type;

constexpr double kResendS = 2.0;                  // unacknowledged EXITED and LOG go again after this
constexpr size_t kMaxLogBatchBytes = 1u << 20;    // one LOG message
constexpr size_t kMaxBufferedLines = 200000;      // per attempt, unacknowledged; older ones stay in the file only
constexpr size_t kMaxEventsBatchBytes = 1u << 20;  // one EVENTS message (one larger event goes alone)
constexpr size_t kMaxEventsBatch = 5000;
constexpr double kRelayDrainS = 30;  // an exit waits this long for its tracker events to be stored

struct Key {
  int64_t job;
  int attempt, rank;
  bool operator<(const Key& o) const { return std::tie(job, attempt, rank) < std::tie(o.job, o.attempt, o.rank); }
  json to_json() const { return {{"job", job}, {"attempt", attempt}, {"rank", rank}}; }
};

struct Line {
  std::string stream;
  double wall;
  std::string text;
};

// A file moving in chunks (UPLOAD to the coordinator, FETCH from it), one chunk in flight.
struct Transfer {
  std::string sha256;
  int64_t size = 0, offset = 0;
  double sent_at = -1e9;
  bool in_flight = false;
  std::unique_ptr<tracker::IncomingFile> incoming;  // FETCH: the file being received
};

struct Attempt {
  Key key;
  std::vector<std::string> argv, env;  // what to run, once its files are here
  bool preparing = false;               // fetching the files to resume from
  std::deque<Transfer> fetches;
  // The tracker relay (tracker/relay/relay.h): the attempt's database, the newest relay
  // number the coordinator stored, the batch in flight, and files it asked for.
  std::string db_path;
  std::unique_ptr<tracker::Db> relay_db;
  int64_t relay_acked = 0, relay_end = 0;
  bool events_in_flight = false;
  double events_sent_at = -1e9;
  std::deque<Transfer> uploads;
  std::vector<std::string> gone;        // files asked for that the job has deleted since
  double exited_at = 0;
  double relay_progress_at = 0;         // the coordinator last stored some of it
  pid_t pid = -1;
  int fds[2] = {-1, -1};        // stdout, stderr (read ends)
  std::string partial[2];       // an unfinished last line of each
  std::ofstream log_file;
  std::deque<Line> unacked;     // lines first_unacked, first_unacked + 1, …
  int64_t first_unacked = 0, next_to_send = 0;
  double last_send = 0;
  bool running = false, exited = false, exit_acked = false;
  int exit_code = 0, signal = 0;
  double exited_sent = -1e9;
  double kill_at = 0;           // > 0: SIGKILL the group then
  bool relay_drained() const { return !relay_db || (relay_acked >= relay_end && uploads.empty()); }
  // The exit is reported once the coordinator holds the job's tracker data (a retry resumes
  // from the newest checkpoint), or when it has not taken it for kRelayDrainS.
  bool exit_reportable(double now) const {
    return exited && (relay_drained() || now - std::max(exited_at, relay_progress_at) > kRelayDrainS);
  }
  bool done() const { return exited && exit_acked && fds[0] < 0 && fds[1] < 0 && unacked.empty() && relay_drained(); }
};

std::string random_suffix() {
  std::random_device rd;
  char buf[8];
  snprintf(buf, sizeof buf, "%06x", static_cast<unsigned>(rd()) & 0xffffff);
  return buf;
}

}  // namespace

struct Worker::State {
  Options options;
  std::string name;
  json resources;
  zmq::context_t context{1};
  std::unique_ptr<zmq::socket_t> socket;
  int64_t session = 0;
  bool welcomed = false;
  double heard = 0, sent = 0;
  double hello_sent = 0;
  double reconnect_at = 0;  // > 0: a new socket is due then
  std::chrono::milliseconds backoff = protocol::kReconnectMin;
  std::map<Key, Attempt> attempts;
  std::map<pid_t, Key> by_pid;
  std::map<std::string, std::string> base_env;  // the worker's own environment: every job's starting point
  double now = 0;

  explicit State(Options o) : options(std::move(o)) {
    if (!options.log) options.log = [](const std::string& line) { std::cerr << "worker: " << line << std::endl; };
    name = options.name.empty() ? resources::host_name() + "-" + random_suffix() : options.name;
    if (name.size() > 255) throw std::invalid_argument("worker name over 255 bytes");
    if (options.i3lab_program.empty()) options.i3lab_program = util::sibling_program("i3lab");
    std::error_code ec;
    std::filesystem::create_directories(options.workdir, ec);
    if (ec || !std::filesystem::is_directory(options.workdir))
      throw std::runtime_error("cannot create the work folder " + options.workdir + ": " + ec.message());
    options.workdir = std::filesystem::absolute(options.workdir).lexically_normal().string();
    resources = resources::describe(options.offer);
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e;
      const size_t eq = kv.find('=');
      if (eq != std::string::npos) base_env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }

  void log(const std::string& line) { options.log(line); }

  // --- the socket --------------------------------------------------------------------------

  void send(Type type, json body) {
    if (!socket) return;  // between connections: HELLO and the resend timers repair it
    Message m;
    m.type = type;
    m.body = std::move(body);
    wire::send(*socket, m);
    sent = now;
  }

  void connect() {
    socket = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
    wire::configure(*socket);
    if (options.keys) keys::make_client(*socket, options.keys->own, options.keys->server_public_key);
    socket->set(zmq::sockopt::routing_id, name);
    socket->set(zmq::sockopt::reconnect_ivl, static_cast<int>(protocol::kReconnectMin.count()));
    socket->set(zmq::sockopt::reconnect_ivl_max, static_cast<int>(protocol::kReconnectMax.count()));
    socket->connect(options.coordinator);
    hello();
  }

  void hello() {
    ++session;
    welcomed = false;
    heard = now;
    hello_sent = now;
    json running = json::array(), exited = json::array();
    for (auto& [key, a] : attempts) {
      const bool reportable = a.exit_reportable(now);
      if (a.running || a.preparing || (a.exited && !reportable)) running.push_back(key.to_json());
      if (reportable && !a.exit_acked) exited.push_back(exit_report(a));
      a.next_to_send = a.first_unacked;  // unacknowledged lines go again
      a.events_in_flight = false;         // and so do unacknowledged events and chunks
      for (auto* list : {&a.uploads, &a.fetches})
        for (Transfer& t : *list) t.in_flight = false;
    }
    send(Type::kHello, {{"worker", name},
                        {"session", session},
                        {"hostname", resources::host_name()},
                        {"resources", resources},
                        {"running", running},
                        {"exited", exited}});
  }

  json exit_report(const Attempt& a) {
    json r = a.key.to_json();
    r["exit_code"] = a.exit_code;
    r["signal"] = a.signal;
    return r;
  }

  // --- jobs --------------------------------------------------------------------------------

  // Train, eval and synthetic jobs track into the attempt's own database, marked for relay.
  // `name` is the attempt's (and rank's) in `dir`: ranks of one job on one worker each have
  // their own files.
  std::vector<std::string> job_argv(const jobs::JobSpec& spec, const std::string& dir, const std::string& name, const std::string& db,
                                    int64_t resume_run, const std::string& resume_from) {
    if (spec.kind == "command") return spec.argv;
    if (spec.kind == "train") {
      const std::string config = dir + "/" + name + ".config.json";
      std::ofstream(config) << spec.config.dump(2) << "\n";
      std::vector<std::string> argv = {options.i3lab_program, "train", config, "--db", db};
      if (resume_run > 0) argv.insert(argv.end(), {"--resume", std::to_string(resume_run), "--from", resume_from});
      return argv;
    }
    if (spec.kind == "synthetic") {
      const std::string config = dir + "/" + name + ".config.json";
      std::ofstream(config) << spec.config.dump(2) << "\n";
      return {options.i3lab_program, "job", "synthetic", "--config", config, "--db", db};
    }
    std::vector<std::string> argv = {options.i3lab_program, "eval"};
    argv.insert(argv.end(), spec.args.begin(), spec.args.end());
    argv.insert(argv.end(), {"--db", db});
    return argv;
  }

  void on_assign(const json& body) {
    if (body["session"].get<int64_t>() != session) {
      log("dropped an ASSIGN of session " + std::to_string(body["session"].get<int64_t>()) + " (this is session " +
          std::to_string(session) + "); the coordinator re-queues it");
      return;
    }
    const Key key{body["job"].get<int64_t>(), body["attempt"].get<int>(), static_cast<int>(body.value("rank", 0))};
    if (attempts.count(key)) return;  // already ours
    Attempt& a = attempts[key];
    a.key = key;
    const std::string dir = options.workdir + "/job-" + std::to_string(key.job);
    const std::string name = "attempt-" + std::to_string(key.attempt) + (key.rank ? ".rank-" + std::to_string(key.rank) : "");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    a.log_file.open(dir + "/" + name + ".log", std::ios::app);
    try {
      const jobs::JobSpec spec = jobs::parse_job_spec(body["spec"], "ASSIGN job " + std::to_string(key.job));
      std::map<std::string, std::string> env = base_env;
      for (const auto& [k, v] : spec.env) env[k] = v;
      for (const auto& [k, v] : body["env"].items())
        if (v.is_string()) env[k] = v.get<std::string>();
      for (const auto& [k, v] : env) a.env.push_back(k + "=" + v);
      int64_t resume_run = 0;
      std::string resume_from = "latest";
      if (spec.kind != "command") {
        // A fresh database per attempt (a work folder may outlive a coordinator whose job ids
        // began again), holding the run to resume when there is one.
        a.db_path = dir + "/" + name + ".db";
        for (const char* suffix : {"", "-wal", "-shm", ".artifacts"}) std::filesystem::remove_all(a.db_path + suffix, ec);
        const json& resume = body.contains("resume") ? body["resume"] : json();
        if (resume.is_object()) {
          resume_run = tracker::import_run_seed(a.db_path, resume.at("seed"));
          if (resume.contains("from") && resume["from"].is_string()) resume_from = resume["from"].get<std::string>();
          const tracker::ContentStore content(a.db_path);
          for (const json& f : resume.at("files")) {
            Transfer t;
            t.sha256 = f.at("sha256").get<std::string>();
            t.size = f.at("size").get<int64_t>();
            if (t.sha256.size() != 64 || t.sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
              throw std::invalid_argument("ASSIGN: resume file " + util::brief(f.at("sha256"), util::kQuoteChars) + " is not a sha256");
            if (!content.has(t.sha256)) a.fetches.push_back(std::move(t));
          }
          add_line(a, 1, "i3lab worker: resuming run " + std::to_string(resume_run) + " from its newest checkpoint (" +
                             std::to_string(a.fetches.size()) + " files to fetch)");
        } else {
          tracker::create_relay_database(a.db_path);
        }
        // Rank 0 tracks a multi-rank job's run; the other ranks write none (model/dist).
        if (key.rank == 0) a.relay_db = tracker::open_database(a.db_path, tracker::OpenMode::kReadOnly);
      }
      a.argv = job_argv(spec, dir, name, a.db_path, resume_run, resume_from);
      a.preparing = true;
      if (a.fetches.empty()) start(a);
      else pump_fetch(a);
    } catch (const std::exception& e) {
      fail_before_start(a, e.what());
    }
  }

  // An attempt that could not start: reported as exit code 127 with the reason in its log.
  void fail_before_start(Attempt& a, const std::string& why) {
    add_line(a, 1, "i3lab worker: " + why);
    a.preparing = false;
    a.exited = true;
    a.exited_at = now;
    a.exit_code = 127;
    log("job " + std::to_string(a.key.job) + " attempt " + std::to_string(a.key.attempt) + ": " + why);
    send_exit(a);
  }

  void start(Attempt& a) {
    const std::string dir = options.workdir + "/job-" + std::to_string(a.key.job);
    const process::Spawned p = process::spawn(a.argv, a.env, dir);
    a.preparing = false;
    a.pid = p.pid;
    a.fds[0] = p.stdout_fd;
    a.fds[1] = p.stderr_fd;
    a.running = true;
    by_pid[p.pid] = a.key;
    send(Type::kStarted, {{"job", a.key.job}, {"attempt", a.key.attempt}, {"rank", a.key.rank}, {"pid", p.pid}});
  }

  // --- files to resume from: FETCH ---------------------------------------------------------

  void pump_fetch(Attempt& a) {
    if (!welcomed || a.fetches.empty()) return;
    Transfer& t = a.fetches.front();
    if (t.in_flight && now - t.sent_at < kResendS) return;
    send(Type::kFetch, {{"sha256", t.sha256}, {"offset", t.offset}});
    t.in_flight = true;
    t.sent_at = now;
  }

  void on_fetch_data(const Message& m) {
    const std::string sha = m.body["sha256"].get<std::string>();
    const int64_t offset = m.body["offset"].get<int64_t>();
    for (auto& [key, a] : attempts) {
      if (!a.preparing || a.fetches.empty() || a.fetches.front().sha256 != sha || a.fetches.front().offset != offset) continue;
      Transfer& t = a.fetches.front();
      t.in_flight = false;
      try {
        if (m.body.contains("error")) throw std::runtime_error(util::brief(m.body["error"], 200));
        if (m.blobs.size() != 1 || m.body["size"].get<int64_t>() != t.size)
          throw std::runtime_error("the coordinator's copy is not the " + std::to_string(t.size) + " bytes expected");
        if (!t.incoming) t.incoming = std::make_unique<tracker::IncomingFile>(tracker::ContentStore(a.db_path), sha, t.size);
        if (m.blobs[0].empty() && t.offset < t.size) throw std::runtime_error("the coordinator sent an empty chunk");
        const bool whole = t.incoming->append(m.blobs[0]);
        t.offset = t.incoming->have();
        if (whole) a.fetches.pop_front();
      } catch (const std::exception& e) {
        a.fetches.clear();  // with its partial file
        fail_before_start(a, "cannot fetch checkpoint file " + sha + ": " + e.what());
        return;
      }
      if (!a.fetches.empty()) return pump_fetch(a);
      try {
        start(a);
      } catch (const std::exception& e) {
        fail_before_start(a, e.what());
      }
      return;
    }
  }

  // --- tracker data: EVENTS and UPLOAD -----------------------------------------------------

  void pump_relay(Attempt& a) {
    if (!welcomed || !a.relay_db || !a.uploads.empty()) return;
    if (a.events_in_flight && now - a.events_sent_at < kResendS) return;
    std::vector<tracker::RelayEntry> entries;
    try {
      entries = tracker::read_relay_log(*a.relay_db, a.relay_acked, kMaxEventsBatch, kMaxEventsBatchBytes);
      a.relay_end = entries.empty() ? a.relay_acked : std::max(a.relay_end, entries.back().id);
    } catch (const std::exception& e) {  // busy or damaged: try again next turn
      log("job " + std::to_string(a.key.job) + ": cannot read " + a.db_path + ": " + e.what());
      return;
    }
    if (entries.empty()) return;
    json events = json::array();
    for (const tracker::RelayEntry& e : entries) {
      // One that could not travel (over the message limit, or unreadable) goes as null: the
      // coordinator skips it, and the relay goes on.
      std::optional<json> event = e.event.size() < protocol::kMaxBodyBytes - (64u << 10) ? util::try_parse_json(e.event) : std::nullopt;
      if (!event) log("job " + std::to_string(a.key.job) + ": tracker event " + std::to_string(e.id) + " of " + std::to_string(e.event.size()) +
                      " bytes cannot be sent; skipped");
      events.push_back(json::array({e.id, event ? *event : json(nullptr)}));
    }
    json body = {{"job", a.key.job}, {"attempt", a.key.attempt}, {"rank", a.key.rank}, {"events", std::move(events)}};
    if (!a.gone.empty()) body["gone"] = a.gone;
    send(Type::kEvents, std::move(body));
    a.events_in_flight = true;
    a.events_sent_at = now;
  }

  void on_events_ack(const json& body) {
    auto it = attempts.find({body["job"].get<int64_t>(), body["attempt"].get<int>(), static_cast<int>(body.value("rank", 0))});
    if (it == attempts.end() || !it->second.relay_db) return;
    Attempt& a = it->second;
    if (body["upto"].get<int64_t>() > a.relay_acked) a.relay_progress_at = now;
    a.relay_acked = std::max(a.relay_acked, body["upto"].get<int64_t>());
    a.events_in_flight = false;
    if (body.contains("missing") && body["missing"].is_array()) {
      const tracker::ContentStore content(a.db_path);
      for (const json& f : body["missing"]) {
        if (!f.is_object() || !f.contains("sha256") || !f["sha256"].is_string() || !f.contains("size") || !f["size"].is_number_integer())
          continue;
        Transfer t;
        t.sha256 = f["sha256"].get<std::string>();
        if (t.sha256.size() != 64 || t.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) continue;
        t.size = f["size"].get<int64_t>();
        if (content.has(t.sha256))
          a.uploads.push_back(std::move(t));
        else
          a.gone.push_back(t.sha256);
      }
    }
    if (!a.uploads.empty()) return pump_upload(a);
    pump_relay(a);
  }

  void pump_upload(Attempt& a) {
    while (welcomed && !a.uploads.empty()) {
      Transfer& t = a.uploads.front();
      if (t.in_flight && now - t.sent_at < kResendS) return;
      std::string chunk;
      int64_t size = -1;
      try {
        chunk = tracker::ContentStore(a.db_path).read_chunk(t.sha256, t.offset, protocol::kArtifactChunkBytes, &size);
      } catch (const std::exception&) {
      }
      if (size != t.size) {  // deleted by the job since (or damaged): its version goes without it
        a.gone.push_back(t.sha256);
        a.uploads.pop_front();
        continue;
      }
      Message m;
      m.type = Type::kUpload;
      m.body = {{"sha256", t.sha256}, {"offset", t.offset}, {"size", t.size}};
      m.blobs.push_back(std::move(chunk));
      wire::send(*socket, m);
      sent = now;
      t.in_flight = true;
      t.sent_at = now;
      return;
    }
    if (a.uploads.empty()) pump_relay(a);
  }

  void on_upload_ack(const json& body) {
    const std::string sha = body["sha256"].get<std::string>();
    const int64_t have = body["have"].get<int64_t>();
    for (auto& [key, a] : attempts) {
      if (a.uploads.empty() || a.uploads.front().sha256 != sha) continue;
      Transfer& t = a.uploads.front();
      t.in_flight = false;
      a.relay_progress_at = now;
      if (body.contains("error")) {
        log("upload of " + sha + " for job " + std::to_string(key.job) + ": " + util::brief(body["error"], 200));
        // Damaged here, it can never be sent; otherwise (the coordinator's disk, its restart) the
        // events go again and it asks again.
        if (!(body.contains("resend_events") && body["resend_events"] == true)) {
          a.gone.push_back(sha);
        } else {  // not before kResendS: a full disk is not fixed by asking again at once
          a.events_in_flight = true;
          a.events_sent_at = now;
        }
        a.uploads.pop_front();
      } else if (have >= t.size) {
        a.uploads.pop_front();
      } else {
        t.offset = std::max<int64_t>(0, have);
      }
      pump_upload(a);
    }
  }

  void on_cancel(const json& body) {
    const Key key{body["job"].get<int64_t>(), body["attempt"].get<int>(), static_cast<int>(body.value("rank", 0))};
    auto it = attempts.find(key);
    if (it != attempts.end() && it->second.preparing) {  // still fetching its checkpoint: never starts
      Attempt& a = it->second;
      a.fetches.clear();
      a.preparing = false;
      a.exited = true;
      a.exited_at = now;
      a.signal = SIGTERM;
      add_line(a, 1, "i3lab worker: cancelled before it started");
      send_exit(a);
      return;
    }
    if (it == attempts.end() || !it->second.running) return;
    Attempt& a = it->second;
    const int64_t grace_ms = body.contains("grace_ms") && body["grace_ms"].is_number_integer()
                                 ? body["grace_ms"].get<int64_t>()
                                 : protocol::kCancelGrace.count();
    if (grace_ms <= 0) {
      process::signal_group(a.pid, SIGKILL);
    } else if (a.kill_at == 0) {
      process::signal_group(a.pid, SIGTERM);
      a.kill_at = now + grace_ms / 1000.0;
    }
    log("job " + std::to_string(key.job) + " attempt " + std::to_string(key.attempt) + ": cancelled" +
        (grace_ms > 0 ? " (SIGTERM; SIGKILL in " + std::to_string(grace_ms / 1000.0).substr(0, 4) + " s)" : " (SIGKILL)"));
  }

  void add_line(Attempt& a, int stream, std::string text) {
    if (text.size() > protocol::kMaxLogLineBytes) text = util::cut(text, protocol::kMaxLogLineBytes);
    const char* name = stream == 0 ? "stdout" : "stderr";
    if (a.log_file) a.log_file << text << "\n" << std::flush;
    if (a.unacked.size() >= kMaxBufferedLines) {  // the coordinator is away for long: keep the file, drop the oldest
      a.unacked.pop_front();
      ++a.first_unacked;
      a.next_to_send = std::max(a.next_to_send, a.first_unacked);
    }
    a.unacked.push_back({name, util::unix_time(), std::move(text)});
  }

  void read_output(Attempt& a, int stream) {
    char buf[65536];
    while (a.fds[stream] >= 0) {
      const ssize_t n = read(a.fds[stream], buf, sizeof buf);
      if (n > 0) {
        std::string& p = a.partial[stream];
        p.append(buf, n);
        size_t start = 0, nl;
        while ((nl = p.find('\n', start)) != std::string::npos) {
          add_line(a, stream, p.substr(start, nl - start));
          start = nl + 1;
        }
        p.erase(0, start);
        if (p.size() > protocol::kMaxLogLineBytes) {
          add_line(a, stream, p);
          p.clear();
        }
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      // End of output (or an error): the last unfinished line is a line too.
      if (!a.partial[stream].empty()) add_line(a, stream, a.partial[stream]);
      a.partial[stream].clear();
      close(a.fds[stream]);
      a.fds[stream] = -1;
    }
  }

  void send_exit(Attempt& a) {
    send_logs(a, true);  // the output first, in order
    json r = exit_report(a);
    send(Type::kExited, r);
    a.exited_sent = now;
  }

  void send_logs(Attempt& a, bool force) {
    if (!welcomed && !force) return;
    const int64_t end = a.first_unacked + static_cast<int64_t>(a.unacked.size());
    while (a.next_to_send < end) {
      json lines = json::array();
      size_t bytes = 0;
      const int64_t first = a.next_to_send;
      while (a.next_to_send < end && bytes < kMaxLogBatchBytes) {
        const Line& l = a.unacked[a.next_to_send - a.first_unacked];
        lines.push_back({l.stream, l.wall, l.text});
        bytes += l.text.size() + 32;
        ++a.next_to_send;
      }
      send(Type::kLog, {{"job", a.key.job}, {"attempt", a.key.attempt}, {"rank", a.key.rank}, {"first", first}, {"lines", lines}});
      a.last_send = now;
    }
  }

  void reap_children() {
    while (std::optional<process::Exit> e = process::reap()) {
      auto it = by_pid.find(e->pid);
      if (it == by_pid.end()) continue;
      Attempt& a = attempts.at(it->second);
      by_pid.erase(it);
      process::signal_group(a.pid, SIGKILL);  // whatever the job left behind
      for (int s = 0; s < 2; ++s) read_output(a, s);
      a.running = false;
      a.exited = true;
      a.exited_at = now;
      if (a.relay_db) {
        try {
          a.relay_end = tracker::relay_log_end(*a.relay_db);  // final: the job is gone
        } catch (const std::exception& err) {
          log("job " + std::to_string(a.key.job) + ": cannot read " + a.db_path + ": " + err.what());
        }
      }
      a.exit_code = e->exit_code;
      a.signal = e->signal;
      log("job " + std::to_string(a.key.job) + " attempt " + std::to_string(a.key.attempt) +
          (a.signal ? " killed by signal " + std::to_string(a.signal) : " exited with " + std::to_string(a.exit_code)));
      pump_relay(a);
      if (a.exit_reportable(now)) send_exit(a);
    }
  }

  // --- messages ----------------------------------------------------------------------------

  void handle(const wire::Received& r) {
    if (!r.decoded.ok()) {
      log("dropped a message from the coordinator: " + r.decoded.reason);
      return;
    }
    const Message& m = r.decoded.message;
    heard = now;
    switch (m.type) {
      case Type::kWelcome:
        if (m.body["session"].get<int64_t>() == session) {
          welcomed = true;
          backoff = protocol::kReconnectMin;
          log("registered with " + options.coordinator + " as " + name + " (session " + std::to_string(session) + ")");
          for (auto& [key, a] : attempts) {
            send_logs(a, false);
            pump_fetch(a);
          }
        }
        break;
      case Type::kHeartbeat: break;
      case Type::kResync:
        // Every message sent before our HELLO arrived earns one; answer once, not once each.
        if (welcomed || now - hello_sent > protocol::kHeartbeatSeconds) hello();
        break;
      case Type::kAssign: on_assign(m.body); break;
      case Type::kCancel: on_cancel(m.body); break;
      case Type::kExitedAck: {
        auto it = attempts.find({m.body["job"].get<int64_t>(), m.body["attempt"].get<int>(), static_cast<int>(m.body.value("rank", 0))});
        if (it != attempts.end() && it->second.exited) it->second.exit_acked = true;
        break;
      }
      case Type::kEventsAck: on_events_ack(m.body); break;
      case Type::kUploadAck: on_upload_ack(m.body); break;
      case Type::kFetchData: on_fetch_data(m); break;
      case Type::kLogAck: {
        auto it = attempts.find({m.body["job"].get<int64_t>(), m.body["attempt"].get<int>(), static_cast<int>(m.body.value("rank", 0))});
        if (it == attempts.end()) break;
        Attempt& a = it->second;
        const int64_t next = std::min(m.body["next"].get<int64_t>(), a.first_unacked + static_cast<int64_t>(a.unacked.size()));
        if (next > a.first_unacked) {
          a.unacked.erase(a.unacked.begin(), a.unacked.begin() + (next - a.first_unacked));
          a.first_unacked = next;
        }
        break;
      }
      default: log(std::string("dropped a ") + protocol::type_name(m.type) + " message: not one a coordinator sends"); break;
    }
  }

  void timers() {
    if (reconnect_at > 0) {
      if (now < reconnect_at) return;
      reconnect_at = 0;
      connect();
      return;
    }
    if (now - heard > protocol::kLivenessSeconds) {
      log("no word from the coordinator at " + options.coordinator + " for " + std::to_string(static_cast<int>(now - heard)) +
          " s; reconnecting in " + std::to_string(backoff.count()) + " ms (jobs keep running)");
      socket.reset();
      welcomed = false;
      reconnect_at = now + backoff.count() / 1000.0;
      backoff = std::min(backoff * 2, protocol::kReconnectMax);
      return;
    }
    for (auto& [key, a] : attempts) {
      if (a.running && a.kill_at > 0 && now >= a.kill_at) {
        process::signal_group(a.pid, SIGKILL);
        a.kill_at = 0;
      }
      if (!welcomed) continue;
      pump_fetch(a);
      pump_upload(a);
      pump_relay(a);
      if (a.exit_reportable(now) && !a.exit_acked && now - a.exited_sent > kResendS) send_exit(a);
      if (!a.unacked.empty() && a.next_to_send > a.first_unacked && now - a.last_send > kResendS) a.next_to_send = a.first_unacked;
      send_logs(a, false);
    }
    for (auto it = attempts.begin(); it != attempts.end();) it = it->second.done() ? attempts.erase(it) : std::next(it);
    if (now - sent >= protocol::kHeartbeatSeconds) send(Type::kHeartbeat, json::object());
  }

  void turn() {
    std::vector<zmq::pollitem_t> items;
    items.push_back({nullptr, process::child_signal_fd(), ZMQ_POLLIN, 0});
    if (socket) items.push_back({socket->handle(), 0, ZMQ_POLLIN, 0});
    std::vector<std::pair<Attempt*, int>> outputs;
    for (auto& [key, a] : attempts)
      for (int s = 0; s < 2; ++s)
        if (a.fds[s] >= 0) {
          items.push_back({nullptr, a.fds[s], ZMQ_POLLIN, 0});
          outputs.emplace_back(&a, s);
        }
    wire::poll(items.data(), items.size(), std::chrono::milliseconds(100));
    now = util::monotonic_seconds();
    process::drain_child_signal();
    const size_t first_output = socket ? 2 : 1;
    for (size_t i = 0; i < outputs.size(); ++i)
      if (items[first_output + i].revents) read_output(*outputs[i].first, outputs[i].second);
    reap_children();
    if (socket) {
      for (int i = 0; i < 1000; ++i) {
        std::optional<wire::Received> r = wire::receive(*socket, false);
        if (!r) break;
        try {
          handle(*r);
        } catch (const nlohmann::json::exception& e) {  // a field of a kind decode() does not check
          log(std::string("dropped a ") + protocol::type_name(r->decoded.message.type) + " message: " + e.what());
        }
      }
    }
    timers();
  }

  void shut_down() {
    if (socket) {
      send(Type::kBye, json::object());
      socket->set(zmq::sockopt::linger, 1000);  // let BYE leave before the socket closes
    }
    const double deadline = util::monotonic_seconds() + protocol::kCancelGrace.count() / 1000.0;
    for (auto& [key, a] : attempts)
      if (a.running) process::signal_group(a.pid, SIGTERM);
    while (!by_pid.empty() && util::monotonic_seconds() < deadline) {
      usleep(20000);
      now = util::monotonic_seconds();
      reap_children();
    }
    for (auto& [key, a] : attempts)
      if (a.running) process::signal_group(a.pid, SIGKILL);
    while (!by_pid.empty()) {
      usleep(5000);
      reap_children();
    }
    for (auto& [key, a] : attempts)
      for (int s = 0; s < 2; ++s)
        if (a.fds[s] >= 0) close(a.fds[s]);
  }
};

Worker::Worker(Options options) : state_(std::make_unique<State>(std::move(options))) {}
Worker::~Worker() = default;

const std::string& Worker::name() const { return state_->name; }

void Worker::serve(const std::atomic<bool>& stop) {
  State& s = *state_;
  s.now = util::monotonic_seconds();
  process::child_signal_fd();
  try {
    s.connect();
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("coordinator endpoint " + s.options.coordinator + ": " + e.what() + " (use tcp://HOST:PORT)");
  }
  s.log("worker " + s.name + " connecting to " + s.options.coordinator + ", work folder " + s.options.workdir);
  while (!stop.load()) s.turn();
  s.shut_down();
}

}  // namespace worker
