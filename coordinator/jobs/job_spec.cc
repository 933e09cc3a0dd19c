#include "coordinator/jobs/job_spec.h"

#include <cmath>
#include <set>

#include "common/util/json.h"
#include "coordinator/synthetic/synthetic.h"

namespace jobs {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& origin, const std::string& field, const std::string& what) {
  throw SpecError(origin + ": " + field + " " + what);
}

std::vector<std::string> string_list(const json& v, const std::string& origin, const std::string& field) {
  if (!v.is_array()) fail(origin, field, "must be an array of strings, got " + util::brief(v, util::kQuoteChars));
  std::vector<std::string> out;
  for (const json& s : v) {
    if (!s.is_string()) fail(origin, field, "must be an array of strings, got an item " + util::brief(s, util::kQuoteChars));
    out.push_back(s.get<std::string>());
  }
  return out;
}

std::map<std::string, std::string> string_map(const json& v, const std::string& origin, const std::string& field) {
  if (!v.is_object()) fail(origin, field, "must be an object of strings, got " + util::brief(v, util::kQuoteChars));
  std::map<std::string, std::string> out;
  for (const auto& [k, s] : v.items()) {
    if (k.empty()) fail(origin, field, "has an empty key");
    if (!s.is_string()) fail(origin, field + "." + k, "must be a string, got " + util::brief(s, util::kQuoteChars));
    out[k] = s.get<std::string>();
  }
  return out;
}

int64_t integer(const json& v, const std::string& origin, const std::string& field, int64_t min, int64_t max) {
  if (!v.is_number_integer()) fail(origin, field, "must be an integer, got " + util::brief(v, util::kQuoteChars));
  if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(max) : (v.get<int64_t>() < min || v.get<int64_t>() > max))
    fail(origin, field, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + v.dump());
  return v.get<int64_t>();
}

double seconds(const json& v, const std::string& origin, const std::string& field) {
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0 || v.get<double>() > 1e9)
    fail(origin, field, "must be a number of seconds in [0, 1e9], got " + util::brief(v, util::kQuoteChars));
  return v.get<double>();
}

Resources parse_resources(const json& v, const std::string& origin) {
  if (!v.is_object()) fail(origin, "resources", "must be an object, got " + util::brief(v, util::kQuoteChars));
  Resources r;
  for (const auto& [k, x] : v.items()) {
    const std::string field = "resources." + k;
    if (k == "gpus") r.gpus = static_cast<int>(integer(x, origin, field, 0, 1024));
    else if (k == "cpu_slots") r.cpu_slots = static_cast<int>(integer(x, origin, field, 0, 1 << 20));
    else if (k == "memory_mb") r.memory_mb = integer(x, origin, field, 0, int64_t{1} << 40);
    else if (k == "labels") r.labels = string_map(x, origin, field);
    else fail(origin, field, "is not a resource (gpus, cpu_slots, memory_mb, labels)");
  }
  return r;
}

}  // namespace

JobSpec parse_job_spec(const json& j, const std::string& origin) {
  if (!j.is_object()) throw SpecError(origin + ": a job must be a JSON object, got " + util::brief(j, util::kQuoteChars));
  if (j.dump().size() > kMaxSpecBytes)
    throw SpecError(origin + ": the job is over " + std::to_string(kMaxSpecBytes) + " bytes of JSON");
  JobSpec s;
  const auto kind = j.find("kind");
  if (kind == j.end()) throw SpecError(origin + ": no \"kind\" (command, train, eval or synthetic)");
  if (!kind->is_string() || (*kind != "command" && *kind != "train" && *kind != "eval" && *kind != "synthetic"))
    fail(origin, "kind", "must be \"command\", \"train\", \"eval\" or \"synthetic\", got " + util::brief(*kind, util::kQuoteChars));
  s.kind = kind->get<std::string>();
  static const std::set<std::string> kCommon = {"kind", "name", "env", "resources", "distributed", "priority",
                                                "max_restarts", "timeout_s", "cancel_grace_s"};
  const std::string own = s.kind == "command" ? "argv" : s.kind == "eval" ? "args" : "config";
  for (const auto& [k, v] : j.items()) {
    if (k == own) continue;
    if (!kCommon.count(k)) {
      const bool other_kind = k == "argv" || k == "config" || k == "args";
      fail(origin, "\"" + k + "\"", other_kind ? "belongs to another kind of job, not \"" + s.kind + "\""
                                               : "is not a job key (argv, config, args, name, env, resources, "
                                                 "distributed, priority, max_restarts, timeout_s, cancel_grace_s)");
    }
    if (k == "name") {
      if (!v.is_string() || v.get<std::string>().size() > 256) fail(origin, "name", "must be a string of at most 256 bytes");
      s.name = v.get<std::string>();
    } else if (k == "env") {
      s.env = string_map(v, origin, "env");
    } else if (k == "resources") {
      s.resources = parse_resources(v, origin);
    } else if (k == "distributed") {
      if (!v.is_object()) fail(origin, "distributed", "must be an object such as {\"ranks\": 2}");
      for (const auto& [dk, dv] : v.items()) {
        if (dk == "ranks") s.ranks = static_cast<int>(integer(dv, origin, "distributed.ranks", 1, kMaxRanks));
        else if (dk == "backend") fail(origin, "distributed.backend", "is a training config's setting: config.distributed.backend");
        else fail(origin, "distributed." + dk, "is not a key of a job's distributed (ranks)");
      }
    } else if (k == "priority") {
      s.priority = static_cast<int>(integer(v, origin, "priority", -1000000, 1000000));
    } else if (k == "max_restarts") {
      s.max_restarts = static_cast<int>(integer(v, origin, "max_restarts", 0, kMaxRestarts));
    } else if (k == "timeout_s") {
      s.timeout_s = seconds(v, origin, "timeout_s");
    } else if (k == "cancel_grace_s") {
      s.cancel_grace_s = seconds(v, origin, "cancel_grace_s");
    }
  }
  const auto body = j.find(own);
  if (s.kind == "synthetic") {  // every key has a default
    s.config = body == j.end() ? json::object() : *body;
    try {
      synthetic::parse_config(s.config, origin + ": config");
    } catch (const std::invalid_argument& e) {
      throw SpecError(e.what());
    }
    return s;
  }
  if (body == j.end()) throw SpecError(origin + ": a " + s.kind + " job needs \"" + own + "\"");
  if (s.kind == "command") {
    s.argv = string_list(*body, origin, "argv");
    if (s.argv.empty() || s.argv[0].empty()) fail(origin, "argv", "must name a program");
  } else if (s.kind == "train") {
    if (!body->is_object()) fail(origin, "config", "must be a training config object, got " + util::brief(*body, util::kQuoteChars));
    s.config = *body;
    // A training config's own "distributed": {"ranks": R > 1} sets the job's ranks. Its 1, the
    // default that every resolved config (i3lab submit, sweeps) carries, leaves the count to the
    // launcher, as `i3lab train` reads it too.
    const auto dist = body->find("distributed");
    if (dist != body->end() && dist->is_object() && dist->contains("ranks")) {
      const int ranks = static_cast<int>(integer((*dist)["ranks"], origin, "config.distributed.ranks", 1, kMaxRanks));
      const auto job_dist = j.find("distributed");
      if (ranks > 1 && job_dist != j.end() && job_dist->contains("ranks") && ranks != s.ranks)
        fail(origin, "distributed.ranks", "is " + std::to_string(s.ranks) + " but config.distributed.ranks is " +
                                              std::to_string(ranks) + ": give one, or the same in both");
      if (ranks > 1) s.ranks = ranks;
    }
  } else {
    s.args = string_list(*body, origin, "args");
    for (const std::string& a : s.args)
      if (a == "--db" || a.rfind("--db=", 0) == 0) fail(origin, "args", "must not hold --db: the worker gives the job its database");
  }
  return s;
}

json to_json(const JobSpec& s) {
  json j;
  j["kind"] = s.kind;
  if (s.kind == "command") j["argv"] = s.argv;
  if (s.kind == "train" || s.kind == "synthetic") j["config"] = s.config;
  if (s.kind == "eval") j["args"] = s.args;
  j["name"] = s.name;
  j["env"] = s.env;
  j["resources"] = {{"gpus", s.resources.gpus}, {"cpu_slots", s.resources.cpu_slots},
                    {"memory_mb", s.resources.memory_mb}, {"labels", s.resources.labels}};
  j["distributed"] = {{"ranks", s.ranks}};
  j["priority"] = s.priority;
  j["max_restarts"] = s.max_restarts;
  j["timeout_s"] = s.timeout_s;
  j["cancel_grace_s"] = s.cancel_grace_s;
  return j;
}

std::string display_name(const JobSpec& s) {
  if (!s.name.empty()) return s.name;
  if (s.kind == "command") {
    std::string words;
    for (const std::string& a : s.argv) {
      if (words.size() > 40) return words + " …";
      words += (words.empty() ? "" : " ") + a;
    }
    return words;
  }
  if (s.kind == "train") {
    const auto name = s.config.find("name");
    if (name != s.config.end() && name->is_string() && !name->get<std::string>().empty()) return "train " + name->get<std::string>();
    return "train";
  }
  if (s.kind == "synthetic") return "synthetic";
  return "eval";
}

bool is_final_job_status(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "cancelled" || status == "early-stopped";
}

}  // namespace jobs
