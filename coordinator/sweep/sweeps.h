// The coordinator's sweeps: each makes trials, ordinary jobs whose config is the sweep's base
// job with the trial's point set in it, and watches their metric.
//
//   trials made   while the sweep has fewer unfinished trials than max_concurrent (or, when
//                 that is 0, than the workers can run at once), until the grid is done,
//                 run_cap points were drawn, or a trial reached metric.target
//   metric        every `metrics` event of a trial's job carrying metric.name updates the
//                 trial's latest and best value; with early_terminate, ASHA (asha.h) judges the
//                 trial at each rung and stops the losers: their jobs end "early-stopped"
//   ended         a trial ends with its job (succeeded, failed after its retries, cancelled,
//                 early-stopped); the sweep is "finished" once it makes no more trials and
//                 none is unfinished
//
// Everything is written through the JobStore in the coordinator's group commit, in the same
// transaction as the jobs it makes: a coordinator killed at any point and started again makes
// no trial twice and loses none (the draws are numbered, sampler.h).
//
// Every trial's run is in the tracker group "sweep-ID", named "sweep-ID-TRIAL".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "coordinator/jobs/job_store.h"
#include "coordinator/sweep/sweep_spec.h"

namespace sweep {

// What the sweeps need from the coordinator.
struct Hooks {
  // Queues a job (a job spec's JSON); returns its id. Throws jobs::SpecError.
  std::function<int64_t(const nlohmann::json& job)> submit;
  // Stops an unfinished job; it ends with `status` (early-stopped or cancelled) and `why`.
  std::function<void(int64_t job, const std::string& status, const std::string& why)> stop;
  // How many copies of `job` the workers could run at once now.
  std::function<int(const jobs::JobSpec& job)> capacity;
  std::function<void(const std::string& line)> log;
};

// A request about a sweep that does not exist: not-found, not invalid.
struct SweepNotFound : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

class Sweeps {
 public:
  Sweeps(jobs::JobStore& store, Hooks hooks);

  // Loads the sweeps in progress from the store.
  void recover();

  // A new sweep from its definition (the JSON of sweep::to_json, the job inline). Throws
  // SweepSpecError. Answer: {"id", "grid_size" (grid only)}.
  nlohmann::json create(const nlohmann::json& definition, double now_unix);

  // A job ended with a final status.
  void job_finished(int64_t job, const std::string& status, double now_unix);
  // A job logged metrics at `step`.
  void metrics(int64_t job, int64_t step, const std::vector<std::pair<std::string, double>>& values);
  // Makes the trials the sweeps are owed and ends the sweeps that are done; each turn.
  void top_up(double now_unix);

  // Newest first: id, name, method, status, note, counts, best.
  nlohmann::json list(int64_t limit);
  // One sweep with its trials. Throws SweepNotFound.
  nlohmann::json show(int64_t id);
  // Runs again the trials whose job failed or was cancelled, or whose run was deleted, the
  // latest of each point; the sweep runs again if it had ended. Throws SweepNotFound.
  nlohmann::json rerun_failed(int64_t id, double now_unix);
  // Stops its unfinished trials; no more are made. Throws SweepNotFound.
  nlohmann::json cancel(int64_t id, double now_unix);

 private:
  struct Active {
    jobs::SweepRow row;
    SweepSpec spec;
    std::optional<jobs::JobSpec> base;  // spec.job, read (for its resources)
    std::vector<jobs::TrialRow> trials;
    int64_t next_point = 0;  // draws made so far
    int unfinished = 0;
    std::set<size_t> stopping;  // trials ASHA asked to stop: not judged again
    std::string done;        // why it makes no more trials ("" : it does)
  };
  Active* find(int64_t id);
  void load(jobs::SweepRow row);
  void make_trial(Active& a, int64_t point, const nlohmann::json& params, double now_unix);
  void end(Active& a, const std::string& status, const std::string& note, double now_unix);
  std::string why_done(const Active& a) const;
  // Job rows read once per answer: a summary and the trial list both need them.
  using JobRows = std::map<int64_t, std::optional<jobs::JobRow>>;
  const std::optional<jobs::JobRow>& job_of(int64_t id, JobRows& seen);
  nlohmann::json summary(const jobs::SweepRow& row, const std::vector<jobs::TrialRow>& trials, JobRows& seen);

  jobs::JobStore& store_;
  Hooks hooks_;
  std::map<int64_t, Active> active_;                      // by sweep id
  std::map<int64_t, std::pair<int64_t, size_t>> by_job_;  // job id → (sweep id, trial index)
};

}  // namespace sweep
