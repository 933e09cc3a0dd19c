// Tracker writes as plain values: the events every producer sends and every store applies.
//
// Each change to a run is one Event: the run was created, resumed or finished, a batch of
// metric points, a metric's goal, a table, a histogram, a console line, a new config, a
// heartbeat, or an artifact version logged, used, re-aliased or deleted. Producers build
// events (tracker::Run does); a store applies them through one path (tracker/store/apply.h),
// in order, in batched transactions; the same values travel between processes in the JSON form
// below (a job to its worker, a worker to the coordinator, an HTTP client to the server).
//
// Sequence numbers. An event carries the uid of its run and a per-run sequence number: 1, 2,
// 3, … in the order its producer made them (gaps are allowed, order is not negotiable). A store
// remembers the highest number it applied for each run and skips events at or below it, so a
// stream can be replayed after a reconnect and nothing is lost or applied twice. seq 0 marks an
// unsequenced event, applied each time it arrives: administrative changes such as
// `i3lab artifact delete` (whose "run" may be "", as may an artifact_logged's).
//
// JSON form: one object per event, {"run": UID, "seq": N, "type": TYPE, ...the fields of TYPE}.
//   TYPE              fields (wall: unix seconds)
//   run_created       project, name, group, tags [str], notes, config {…}, wall
//   run_resumed       from_step (≥ 0: delete the run's points, tables and histograms after it;
//                     -1: keep everything), wall
//   run_finished      status (finished failed stopped crashed early-stopped cancelled), wall
//   metrics           step, wall, values {KEY: number, or "nan", "inf", "-inf"}
//   metric_goal       key, goal ("min", "max" or "": which extreme is the best value)
//   table             name, step, columns [str], rows [[…], …] (each row as long as columns)
//   histogram         key, step, lo, hi, counts [int] (equal-width bins over [lo, hi])
//   console           stream ("stdout" or "stderr"), line, wall
//   config            config {…} (replaces the run's config)
//   heartbeat         wall
//   artifact_logged   name, artifact_type, metadata {…}, aliases [str], files [{path, sha256,
//                     size}] (in path order), wall
//                     (the files must already be in the receiving store's content store)
//   artifact_used     ref ("NAME", "NAME:ALIAS" or "NAME:vN", resolved by the receiver)
//   artifact_alias    ref, alias (moves ALIAS to the version REF names)
//   artifact_deleted  ref
// Readers reject unknown types and fields, wrong types and values past the limits below, with
// an EventError naming the field. Writers emit exactly these keys, so the form is stable.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "tracker/events/artifact.h"

namespace tracker {

// Limits on what may be stored; larger values are refused (std::invalid_argument).
constexpr size_t kMaxNameBytes = 256;       // metric keys, run, project, table and artifact names
constexpr size_t kMaxJsonBytes = 4u << 20;  // a config, a table, metadata
constexpr size_t kMaxLineBytes = 64u << 10; // a console line (longer lines are cut by Run)

struct RunCreated {
  std::string project = "default", name, group;
  std::vector<std::string> tags;
  std::string notes;
  nlohmann::json config = nlohmann::json::object();
  double wall = 0;
};
struct RunResumed {
  int64_t from_step = -1;
  double wall = 0;
};
struct RunFinished {
  std::string status = "finished";
  double wall = 0;
};
struct Metrics {
  int64_t step = 0;
  double wall = 0;
  std::vector<std::pair<std::string, double>> values;  // NaN and ±inf are kept
};
struct MetricGoal {
  std::string key, goal;
};
struct Table {
  std::string name;
  int64_t step = 0;
  nlohmann::json columns, rows;
};
struct Histogram {
  std::string key;
  int64_t step = 0;
  double lo = 0, hi = 0;
  std::vector<int64_t> counts;
};
struct ConsoleLine {
  std::string stream, line;
  double wall = 0;
};
struct ConfigSet {
  nlohmann::json config;
};
struct Heartbeat {
  double wall = 0;
};
struct ArtifactLogged {
  std::string name, type;
  nlohmann::json metadata = nlohmann::json::object();
  std::vector<std::string> aliases;
  std::vector<ArtifactFile> files;  // in path order
  double wall = 0;
};
struct ArtifactUsed {
  std::string ref;
};
struct ArtifactAlias {
  std::string ref, alias;
};
struct ArtifactDeleted {
  std::string ref;
};

using EventBody = std::variant<RunCreated, RunResumed, RunFinished, Metrics, MetricGoal, Table, Histogram, ConsoleLine,
                               ConfigSet, Heartbeat, ArtifactLogged, ArtifactUsed, ArtifactAlias, ArtifactDeleted>;

struct Event {
  std::string run;   // the run's uid; "" for unsequenced administrative events
  uint64_t seq = 0;  // 1, 2, … per run; 0: unsequenced
  EventBody body;
};

// A malformed event: names the field and what is wrong with it.
struct EventError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// The TYPE of the JSON form ("metrics", "run_created", …).
const char* type_name(const EventBody& body);

// Checks names, statuses, shapes and sizes against the rules above. Throws
// std::invalid_argument saying what is wrong. Producers call it before sending; readers of the
// JSON form get it through event_from_json.
void check(const Event& event);

// Final run statuses (run_finished).
bool is_final_status(const std::string& status);  // finished failed stopped crashed early-stopped cancelled

nlohmann::json to_json(const Event& event);
// The inverse of to_json. Throws EventError naming the field for anything that is not an
// event of the form above (and what check() refuses).
Event event_from_json(const nlohmann::json& j);

}  // namespace tracker
