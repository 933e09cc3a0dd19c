// Job specs (errors name the field) and placement (fit, GPUs, labels, all-or-nothing gangs).
#include <gtest/gtest.h>

#include "coordinator/jobs/job_spec.h"
#include "coordinator/scheduler/placement.h"

namespace {

using jobs::parse_job_spec;
using nlohmann::json;

std::string error_of(const json& j) {
  try {
    parse_job_spec(j, "job.json");
  } catch (const jobs::SpecError& e) {
    return e.what();
  }
  return "";
}

TEST(JobSpec, ReadsEveryKeyAndWritesItBack) {
  const json j = {{"kind", "command"}, {"argv", {"sleep", "5"}}, {"name", "nap"}, {"env", {{"A", "1"}}},
                  {"resources", {{"gpus", 1}, {"cpu_slots", 2}, {"memory_mb", 100}, {"labels", {{"zone", "a"}}}}},
                  {"distributed", {{"ranks", 4}}}, {"priority", 3}, {"max_restarts", 0}, {"timeout_s", 60}, {"cancel_grace_s", 2}};
  const jobs::JobSpec s = parse_job_spec(j, "job.json");
  EXPECT_EQ(s.argv, (std::vector<std::string>{"sleep", "5"}));
  EXPECT_EQ(s.resources.gpus, 1);
  EXPECT_EQ(s.resources.labels.at("zone"), "a");
  EXPECT_EQ(s.ranks, 4);
  EXPECT_EQ(s.max_restarts, 0);
  EXPECT_EQ(jobs::to_json(parse_job_spec(jobs::to_json(s), "again")), jobs::to_json(s));
  EXPECT_EQ(parse_job_spec({{"kind", "command"}, {"argv", {"true"}}}, "x").max_restarts, 5);  // Determined's default
}

TEST(JobSpec, ErrorsNameTheFileAndField) {
  EXPECT_EQ(error_of(json::array()), "job.json: a job must be a JSON object, got []");
  EXPECT_EQ(error_of({{"argv", {"true"}}}), "job.json: no \"kind\" (command, train, eval or synthetic)");
  EXPECT_EQ(error_of({{"kind", "shell"}}), "job.json: kind must be \"command\", \"train\", \"eval\" or \"synthetic\", got \"shell\"");
  EXPECT_EQ(error_of({{"kind", "command"}}), "job.json: a command job needs \"argv\"");
  EXPECT_EQ(error_of({{"kind", "command"}, {"argv", json::array()}}), "job.json: argv must name a program");
  EXPECT_EQ(error_of({{"kind", "command"}, {"argv", {1}}}), "job.json: argv must be an array of strings, got an item 1");
  EXPECT_EQ(error_of({{"kind", "command"}, {"argv", {"x"}}, {"config", json::object()}}),
            "job.json: \"config\" belongs to another kind of job, not \"command\"");
  EXPECT_NE(error_of({{"kind", "command"}, {"argv", {"x"}}, {"retries", 1}}).find("job.json: \"retries\" is not a job key"),
            std::string::npos);
  EXPECT_EQ(error_of({{"kind", "command"}, {"argv", {"x"}}, {"resources", {{"gpus", -1}}}}),
            "job.json: resources.gpus must be in [0, 1024], got -1");
  EXPECT_EQ(error_of({{"kind", "command"}, {"argv", {"x"}}, {"max_restarts", 1e10}}),
            "job.json: max_restarts must be an integer, got 10000000000.0");
  EXPECT_EQ(error_of({{"kind", "command"}, {"argv", {"x"}}, {"timeout_s", -1}}),
            "job.json: timeout_s must be a number of seconds in [0, 1e9], got -1");
  EXPECT_EQ(error_of({{"kind", "command"}, {"argv", {"x"}}, {"env", {{"A", 1}}}}), "job.json: env.A must be a string, got 1");
  EXPECT_EQ(error_of({{"kind", "eval"}, {"args", {"--db", "x"}}}),
            "job.json: args must not hold --db: the worker gives the job its database");
  EXPECT_EQ(error_of({{"kind", "command"}, {"argv", {"x"}}, {"distributed", {{"ranks", 0}}}}),
            "job.json: distributed.ranks must be in [1, 1024], got 0");
}

// The contract of data-parallel training: a training config's "distributed": {"ranks": R} makes
// an R-rank job; a job-level count must agree with it.
TEST(JobSpec, ATrainingConfigsRanksMakeTheJobsRanks) {
  const json config = {{"data", {{"vocab", "v.json"}}}, {"distributed", {{"ranks", 3}, {"backend", "gloo"}}}};
  EXPECT_EQ(parse_job_spec({{"kind", "train"}, {"config", config}}, "j").ranks, 3);
  EXPECT_EQ(parse_job_spec({{"kind", "train"}, {"config", config}, {"distributed", {{"ranks", 3}}}}, "j").ranks, 3);
  EXPECT_EQ(parse_job_spec({{"kind", "train"}, {"config", {{"data", {{"vocab", "v.json"}}}}}, {"distributed", {{"ranks", 2}}}}, "j").ranks, 2);
  // A resolved config (i3lab submit, a sweep) carries the default 1: the job's count stands.
  EXPECT_EQ(parse_job_spec({{"kind", "train"}, {"config", {{"distributed", {{"ranks", 1}}}}}, {"distributed", {{"ranks", 2}}}}, "j").ranks, 2);
  EXPECT_EQ(error_of({{"kind", "train"}, {"config", config}, {"distributed", {{"ranks", 2}}}}),
            "job.json: distributed.ranks is 2 but config.distributed.ranks is 3: give one, or the same in both");
  EXPECT_EQ(error_of({{"kind", "train"}, {"config", {{"distributed", {{"ranks", 0}}}}}}),
            "job.json: config.distributed.ranks must be in [1, 1024], got 0");
  EXPECT_EQ(error_of({{"kind", "command"}, {"argv", {"x"}}, {"distributed", {{"ranks", 2}, {"backend", "gloo"}}}}),
            "job.json: distributed.backend is a training config's setting: config.distributed.backend");
}

scheduler::Node node(const std::string& id, int slots, std::vector<int> gpus = {}, std::map<std::string, std::string> labels = {}) {
  scheduler::Node n;
  n.id = id;
  n.capacity.cpu_slots = slots;
  n.capacity.gpus = std::move(gpus);
  n.capacity.labels = std::move(labels);
  return n;
}

TEST(Placement, FitsSlotsGpusMemoryAndLabels) {
  scheduler::Node a = node("a", 2), b = node("b", 4, {0, 1}, {{"zone", "b"}});
  jobs::JobSpec spec = parse_job_spec({{"kind", "command"}, {"argv", {"x"}}, {"resources", {{"gpus", 1}}}}, "j");
  auto p = scheduler::place(spec, {&a, &b});
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)[0].worker, "b");
  EXPECT_EQ((*p)[0].gpus, std::vector<int>{0});
  p = scheduler::place(spec, {&a, &b});
  EXPECT_EQ((*p)[0].gpus, std::vector<int>{1});
  EXPECT_FALSE(scheduler::place(spec, {&a, &b}));  // both GPUs taken
  b.give_back(spec.resources, {0});
  EXPECT_EQ((*scheduler::place(spec, {&a, &b}))[0].gpus, std::vector<int>{0});

  jobs::JobSpec zone = parse_job_spec({{"kind", "command"}, {"argv", {"x"}}, {"resources", {{"labels", {{"zone", "c"}}}}}}, "j");
  EXPECT_FALSE(scheduler::place(zone, {&a, &b}));
  jobs::JobSpec big = parse_job_spec({{"kind", "command"}, {"argv", {"x"}}, {"resources", {{"memory_mb", 10}}}}, "j");
  a.capacity.memory_mb = 5;
  b.capacity.memory_mb = 5;
  EXPECT_FALSE(scheduler::place(big, {&a, &b}));
}

TEST(Placement, GangsArePlacedWholeOrNotAtAll) {
  scheduler::Node a = node("a", 2), b = node("b", 1);
  jobs::JobSpec gang = parse_job_spec({{"kind", "command"}, {"argv", {"x"}}, {"distributed", {{"ranks", 4}}}}, "j");
  EXPECT_FALSE(scheduler::place(gang, {&a, &b}));  // 3 slots for 4 ranks
  EXPECT_EQ(a.used_slots + b.used_slots, 0);       // nothing half-taken
  EXPECT_TRUE(scheduler::could_ever_fit(parse_job_spec({{"kind", "command"}, {"argv", {"x"}}, {"distributed", {{"ranks", 3}}}}, "j"),
                                        {&a, &b}));
  EXPECT_FALSE(scheduler::could_ever_fit(gang, {&a, &b}));
  jobs::JobSpec three = parse_job_spec({{"kind", "command"}, {"argv", {"x"}}, {"distributed", {{"ranks", 3}}}}, "j");
  auto p = scheduler::place(three, {&a, &b});
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)[0].worker, "a");  // ranks stay together while they fit
  EXPECT_EQ((*p)[1].worker, "a");
  EXPECT_EQ((*p)[2].worker, "b");
}

}  // namespace
