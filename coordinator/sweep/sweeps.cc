#include "coordinator/sweep/sweeps.h"

#include <cmath>
#include <set>

#include "common/util/json.h"
#include "coordinator/sweep/asha.h"
#include "coordinator/sweep/importance.h"
#include "coordinator/sweep/sampler.h"

namespace sweep {
namespace {

using nlohmann::json;

// Sets config[a][b][c] for the path "a.b.c", making the objects on the way.
void set_path(json& config, const std::string& path, const json& value) {
  json* at = &config;
  size_t from = 0;
  while (true) {
    const size_t dot = path.find('.', from);
    const std::string key = path.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
    if (!at->is_object()) *at = json::object();
    if (dot == std::string::npos) {
      (*at)[key] = value;
      return;
    }
    at = &(*at)[key];
    from = dot + 1;
  }
}

// A command trial's argv: the argument macros (sweep_spec.h) expanded as W&B's agent does.
json command_argv(const json& argv, const json& params) {
  const auto shown = [](const json& v) { return v.is_string() ? v.get<std::string>() : util::dump_json(v); };
  json out = json::array();
  for (const json& word : argv) {
    if (word == kArgsMacro || word == kArgsNoHyphensMacro) {
      for (const auto& [path, value] : params.items())
        out.push_back((word == kArgsMacro ? "--" : "") + path + "=" + shown(value));
    } else if (word == kArgsJsonMacro) {
      out.push_back(util::dump_json(params));
    } else {
      out.push_back(word);
    }
  }
  return out;
}

bool ended_well(const std::string& status) { return status == "succeeded" || status == "early-stopped"; }

std::string params_text(const json& params) {
  std::string out;
  for (const auto& [k, v] : params.items()) out += (out.empty() ? "" : " ") + k + "=" + util::brief(v, 24);
  return out;
}

json opt(const std::optional<double>& v) { return v && std::isfinite(*v) ? json(*v) : json(); }

}  // namespace

Sweeps::Sweeps(jobs::JobStore& store, Hooks hooks) : store_(store), hooks_(std::move(hooks)) {}

Sweeps::Active* Sweeps::find(int64_t id) {
  auto it = active_.find(id);
  return it == active_.end() ? nullptr : &it->second;
}

void Sweeps::recover() {
  for (jobs::SweepRow& row : store_.sweeps_in_progress()) load(std::move(row));
}

void Sweeps::load(jobs::SweepRow row) {
  const int64_t id = row.id;
  Active& a = active_[id];
  a.row = std::move(row);
  a.trials = store_.trials_of(id);
  for (size_t i = 0; i < a.trials.size(); ++i) {
    const jobs::TrialRow& t = a.trials[i];
    a.next_point = std::max(a.next_point, t.point + 1);
    if (t.status.empty()) {
      ++a.unfinished;
      by_job_[t.job_id] = {id, i};
    }
  }
  try {
    a.spec = parse_sweep_spec(a.row.spec, "sweep " + std::to_string(id), ".");
    a.base = jobs::parse_job_spec(a.spec.job, "sweep " + std::to_string(id) + ": job");
    a.done = why_done(a);  // then kept up as trials are made, report and end
  } catch (const std::exception& e) {
    // A definition this build no longer reads (a training key renamed): its trials still end.
    if (a.row.status == "running") end(a, "failed", std::string("its definition no longer parses: ") + e.what(), 0);
  }
}

json Sweeps::create(const json& definition, double now_unix) {
  // A file's path would be read on the coordinator's machine: the client sends the job inline.
  if (!definition.is_object() || !definition.contains("job") || !definition["job"].is_object())
    throw SweepSpecError("sweep: \"job\" must be a job object (i3lab sweep reads a job file and sends it inline)");
  const SweepSpec spec = parse_sweep_spec(definition, "sweep", ".");
  jobs::parse_job_spec(spec.job, "sweep: job");  // the base job must be one
  jobs::SweepRow row;
  row.id = store_.insert_sweep(to_json(spec), now_unix);
  row.spec = to_json(spec);
  row.created_at = now_unix;
  const int64_t id = row.id;
  load(std::move(row));
  hooks_.log("sweep " + std::to_string(id) + " (" + method_name(spec.method) + ", " + std::to_string(spec.parameters.size()) +
             " parameters) created");
  json out = {{"id", id}};
  if (spec.method == Method::kGrid) out["grid_size"] = grid_size(spec);
  return out;
}

std::string Sweeps::why_done(const Active& a) const {
  const SweepSpec& s = a.spec;
  if (s.metric.target) {
    for (const jobs::TrialRow& t : a.trials)
      if (t.value && (s.metric.maximize ? *t.value >= *s.metric.target : *t.value <= *s.metric.target))
        return "trial " + std::to_string(t.trial) + " reached the target " + s.metric.name + " " + util::brief(*s.metric.target);
  }
  if (s.method == Method::kGrid && static_cast<uint64_t>(a.next_point) >= grid_size(s))
    return "every one of the grid's " + std::to_string(grid_size(s)) + " points has run";
  if (s.run_cap > 0 && a.next_point >= s.run_cap) return "run_cap " + std::to_string(s.run_cap) + " trials have run";
  return "";
}

void Sweeps::make_trial(Active& a, int64_t point, const json& params, double now_unix) {
  const int64_t id = a.row.id, number = static_cast<int64_t>(a.trials.size());
  json job = a.spec.job;
  const std::string group = "sweep-" + std::to_string(id), name = group + "-" + std::to_string(number);
  if (job["kind"] == "command") {
    job["argv"] = command_argv(job["argv"], params);
    json& env = job["env"];
    if (!env.is_object()) env = json::object();
    env["I3LAB_SWEEP_PARAMS"] = util::dump_json(params);
    env["I3LAB_RUN_GROUP"] = group;
    env["I3LAB_RUN_NAME"] = name;
    if (!a.spec.project.empty()) env["I3LAB_PROJECT"] = a.spec.project;
  } else {
    json& config = job["config"];
    for (const auto& [path, value] : params.items()) set_path(config, path, value);
    config["group"] = group;
    config["name"] = name;
    if (!a.spec.project.empty()) config["project"] = a.spec.project;
  }
  job["name"] = "sweep " + std::to_string(id) + " trial " + std::to_string(number);
  jobs::TrialRow t;
  t.sweep_id = id;
  t.trial = number;
  t.point = point;
  t.params = params;
  t.job_id = hooks_.submit(job);
  t.created_at = now_unix;
  store_.save_trial(t);
  by_job_[t.job_id] = {id, a.trials.size()};
  a.trials.push_back(std::move(t));
  ++a.unfinished;
  hooks_.log("sweep " + std::to_string(id) + " trial " + std::to_string(number) + " (job " + std::to_string(a.trials.back().job_id) +
             "): " + params_text(params));
}

void Sweeps::end(Active& a, const std::string& status, const std::string& note, double now_unix) {
  a.row.status = status;
  a.row.note = note;
  a.row.finished_at = now_unix;
  store_.save_sweep(a.row);
  hooks_.log("sweep " + std::to_string(a.row.id) + " " + status + ": " + note);
}

void Sweeps::top_up(double now_unix) {
  for (auto it = active_.begin(); it != active_.end();) {
    Active& a = it->second;
    if (a.row.status == "running") {
      try {
        while (a.done.empty()) {
          const int limit = a.spec.max_concurrent > 0 ? a.spec.max_concurrent : hooks_.capacity(*a.base);
          if (a.unfinished >= limit) break;
          std::vector<Observation> seen;
          if (a.spec.method == Method::kBayes) {
            for (const jobs::TrialRow& t : a.trials) {
              if (t.replaced_by) continue;
              Observation o;
              o.point = t.params;
              o.value = t.value;
              o.step = t.step.value_or(0);
              o.state = t.status.empty()               ? Observation::State::kRunning
                        : t.status == "succeeded"      ? Observation::State::kDone
                        : t.status == "early-stopped"  ? Observation::State::kStopped
                                                       : Observation::State::kFailed;
              seen.push_back(std::move(o));
            }
          }
          const int64_t point = a.next_point;
          make_trial(a, point, next_point(a.spec, static_cast<uint64_t>(point), seen), now_unix);
          a.next_point = point + 1;
          a.done = why_done(a);
        }
        if (!a.done.empty() && a.unfinished == 0) end(a, "finished", a.done, now_unix);
      } catch (const tracker::DbError&) {
        throw;
      } catch (const std::exception& e) {
        end(a, "failed", std::string("could not make a trial: ") + e.what(), now_unix);
      }
    }
    it = a.row.status != "running" && a.unfinished == 0 ? active_.erase(it) : std::next(it);
  }
}

void Sweeps::job_finished(int64_t job, const std::string& status, double now_unix) {
  auto it = by_job_.find(job);
  if (it == by_job_.end()) return;
  Active* a = find(it->second.first);
  const size_t index = it->second.second;
  by_job_.erase(it);
  if (!a) return;
  jobs::TrialRow& t = a->trials[index];
  t.status = status;
  t.ended_at = now_unix;
  store_.save_trial(t);
  --a->unfinished;
  if (a->done.empty()) a->done = why_done(*a);  // a target reached
}

void Sweeps::metrics(int64_t job, int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  auto it = by_job_.find(job);
  if (it == by_job_.end()) return;
  Active* a = find(it->second.first);
  if (!a) return;
  const SweepSpec& s = a->spec;
  const double* value = nullptr;
  for (const auto& [key, v] : values)
    if (key == s.metric.name) value = &v;
  if (!value || s.metric.name.empty()) return;
  const double v = *value;
  const size_t index = it->second.second;
  jobs::TrialRow& t = a->trials[index];
  t.value = v;
  t.step = step;
  if (std::isfinite(v) && (!t.best || (s.metric.maximize ? v > *t.best : v < *t.best))) t.best = v;
  std::string stop_why;
  if (s.early_terminate.enabled && !a->stopping.count(index)) {
    const EarlyTerminate& e = s.early_terminate;
    while (true) {
      const size_t k = t.rungs.size();
      const int64_t rung = rung_step(e, k);
      if (rung == 0 || step < rung) break;
      std::vector<double> others;
      for (size_t i = 0; i < a->trials.size(); ++i)
        if (i != index && a->trials[i].rungs.size() > k) others.push_back(a->trials[i].rungs[k]);
      t.rungs.push_back(v);
      if (!asha_continues(others, v, e.eta, s.metric.maximize)) {
        char shown[32];
        snprintf(shown, sizeof shown, "%.6g", v);
        stop_why = "ASHA: at step " + std::to_string(step) + " (rung " + std::to_string(k) + ", step " + std::to_string(rung) + ") " +
                   s.metric.name + " " + shown + " is not in the top 1/" + std::to_string(e.eta) + " of the " +
                   std::to_string(others.size() + 1) + " trials there";
        break;
      }
    }
  }
  store_.save_trial(t);
  if (a->done.empty()) a->done = why_done(*a);
  if (!stop_why.empty()) {
    a->stopping.insert(index);
    hooks_.log("sweep " + std::to_string(a->row.id) + " trial " + std::to_string(t.trial) + " stopped early: " + stop_why);
    hooks_.stop(job, "early-stopped", stop_why);  // may end the job at once: `t` is not used after this
  }
}

const std::optional<jobs::JobRow>& Sweeps::job_of(int64_t id, JobRows& seen) {
  auto it = seen.find(id);
  if (it == seen.end()) it = seen.emplace(id, store_.job(id)).first;
  return it->second;
}

json Sweeps::summary(const jobs::SweepRow& row, const std::vector<jobs::TrialRow>& trials, JobRows& seen) {
  const json& spec = row.spec;
  const json metric = spec.value("metric", json::object());
  const bool maximize = metric.value("goal", "minimize") == "maximize";
  json counts = json::object();
  const jobs::TrialRow* best = nullptr;
  for (const jobs::TrialRow& t : trials) {
    std::string status = t.status;
    if (status.empty()) {
      const std::optional<jobs::JobRow>& job = job_of(t.job_id, seen);
      status = job ? job->status : "queued";
    }
    counts[status] = counts.value(status, 0) + 1;
    if (t.value && std::isfinite(*t.value) && status != "failed" &&
        (!best || (maximize ? *t.value > *best->value : *t.value < *best->value)))
      best = &t;
  }
  json out = {{"id", row.id},
              {"name", spec.value("name", "sweep " + std::to_string(row.id))},
              {"method", spec.value("method", "")},
              {"status", row.status},
              {"note", row.note},
              {"metric", metric},
              {"created_at", row.created_at},
              {"finished_at", opt(row.finished_at)},
              {"trials", trials.size()},
              {"counts", counts},
              {"best", nullptr}};
  if (best) {
    const std::optional<jobs::JobRow>& job = job_of(best->job_id, seen);
    out["best"] = {{"trial", best->trial}, {"value", *best->value}, {"params", best->params}, {"job", best->job_id},
                   {"run", job ? job->run_uid : ""}};
  }
  return out;
}

json Sweeps::list(int64_t limit) {
  json out = json::array();
  for (const jobs::SweepRow& row : store_.sweeps(limit)) {
    const Active* a = find(row.id);
    JobRows seen;
    out.push_back(summary(a ? a->row : row, a ? a->trials : store_.trials_of(row.id), seen));
  }
  return out;
}

json Sweeps::show(int64_t id) {
  const Active* a = find(id);
  std::optional<jobs::SweepRow> stored;
  if (!a && !(stored = store_.sweep(id))) throw SweepNotFound("no sweep " + std::to_string(id));
  const jobs::SweepRow& row = a ? a->row : *stored;
  const std::vector<jobs::TrialRow> trials = a ? a->trials : store_.trials_of(id);
  JobRows seen;
  json out = summary(row, trials, seen);
  out["spec"] = row.spec;
  if (a && a->spec.method == Method::kGrid) out["grid_size"] = grid_size(a->spec);
  json list = json::array();
  for (const jobs::TrialRow& t : trials) {
    const std::optional<jobs::JobRow>& job = job_of(t.job_id, seen);
    list.push_back({{"trial", t.trial},
                    {"point", t.point},
                    {"params", t.params},
                    {"job", t.job_id},
                    {"status", !t.status.empty() ? t.status : job ? job->status : "queued"},
                    {"value", opt(t.value)},
                    {"best", opt(t.best)},
                    {"step", t.step ? json(*t.step) : json()},
                    {"rungs", t.rungs},
                    {"replaced_by", t.replaced_by ? json(*t.replaced_by) : json()},
                    {"run", job ? job->run_uid : ""},
                    {"run_id", job && !job->run_uid.empty() ? store_.run_id(job->run_uid) : 0},
                    {"error", job && job->status != "succeeded" ? job->error : ""},
                    {"created_at", t.created_at},
                    {"ended_at", opt(t.ended_at)}});
  }
  out["trials"] = std::move(list);

  // The best value over time: each ended trial with a metric, in the order they ended.
  const bool maximize = out["metric"].value("goal", "minimize") == "maximize";
  std::vector<const jobs::TrialRow*> ended;
  for (const jobs::TrialRow& t : trials)
    if (t.ended_at && t.value && std::isfinite(*t.value) && t.status != "failed") ended.push_back(&t);
  std::stable_sort(ended.begin(), ended.end(), [](const jobs::TrialRow* x, const jobs::TrialRow* y) { return *x->ended_at < *y->ended_at; });
  json best_so_far = json::array();
  std::optional<double> best;
  for (const jobs::TrialRow* t : ended) {
    if (!best || (maximize ? *t->value > *best : *t->value < *best)) best = *t->value;
    best_so_far.push_back({{"trial", t->trial}, {"ended_at", *t->ended_at}, {"value", *t->value}, {"best", *best}});
  }
  out["best_so_far"] = std::move(best_so_far);

  // Parameter importance over the trials that reported the metric.
  std::optional<SweepSpec> spec;
  if (a) spec = a->spec;
  else try {
      spec = parse_sweep_spec(row.spec, "sweep " + std::to_string(id), ".");
    } catch (const std::exception&) {
    }
  json importance = json::array();
  if (spec) {
    std::vector<json> points;
    std::vector<double> values;
    for (const jobs::TrialRow& t : trials) {
      points.push_back(t.params);
      values.push_back(t.value && t.status != "failed" ? *t.value : NAN);
    }
    for (const ParameterImportance& p : parameter_importance(*spec, points, values))
      importance.push_back({{"path", p.path}, {"correlation", opt(p.correlation)}, {"importance", opt(p.importance)}});
  }
  out["importance"] = std::move(importance);
  return out;
}

json Sweeps::rerun_failed(int64_t id, double now_unix) {
  if (!find(id)) {
    std::optional<jobs::SweepRow> row = store_.sweep(id);
    if (!row) throw SweepNotFound("no sweep " + std::to_string(id));
    load(std::move(*row));
  }
  Active& a = *find(id);
  if (a.row.status == "failed" || !a.base)
    throw std::invalid_argument("sweep " + std::to_string(id) + " failed (" + a.row.note + "); start a new one");
  json rerun = json::array();
  const size_t n = a.trials.size();
  for (size_t i = 0; i < n; ++i) {
    if (a.trials[i].replaced_by || a.trials[i].status.empty()) continue;
    const std::string status = a.trials[i].status;
    bool deleted = false;
    if (ended_well(status)) {
      const std::optional<jobs::JobRow> job = store_.job(a.trials[i].job_id);
      deleted = job && !job->run_uid.empty() && store_.run_status(job->run_uid).empty();
    }
    if (status != "failed" && status != "cancelled" && !deleted) continue;
    make_trial(a, a.trials[i].point, a.trials[i].params, now_unix);
    a.trials[i].replaced_by = a.trials.back().trial;
    store_.save_trial(a.trials[i]);
    rerun.push_back({{"trial", a.trials.back().trial}, {"replaces", a.trials[i].trial}, {"job", a.trials.back().job_id},
                     {"why", deleted ? "its run was deleted" : status}});
  }
  if (!rerun.empty() && a.row.status != "running") {
    a.row.status = "running";
    a.row.note = "";
    a.row.finished_at.reset();
    store_.save_sweep(a.row);
  }
  return {{"id", id}, {"rerun", rerun}};
}

json Sweeps::cancel(int64_t id, double now_unix) {
  Active* a = find(id);
  if (!a) {
    const std::optional<jobs::SweepRow> row = store_.sweep(id);
    if (!row) throw SweepNotFound("no sweep " + std::to_string(id));
    return {{"id", id}, {"status", row->status}, {"stopping", 0}};
  }
  std::vector<int64_t> unfinished;
  for (const jobs::TrialRow& t : a->trials)
    if (t.status.empty()) unfinished.push_back(t.job_id);
  if (a->row.status == "running") end(*a, "cancelled", "cancelled by request", now_unix);
  for (int64_t job : unfinished) hooks_.stop(job, "cancelled", "its sweep was cancelled");
  return {{"id", id}, {"status", "cancelled"}, {"stopping", unfinished.size()}};
}

}  // namespace sweep
