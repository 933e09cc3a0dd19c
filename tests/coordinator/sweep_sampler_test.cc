// The samplers and ASHA as pure functions: the grid is exact, draws follow their distributions
// and repeat with the seed, TPE beats random search on the synthetic objective, running trials
// steer TPE away (the constant liar), and ASHA's rule keeps the top 1/eta at each rung.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "coordinator/sweep/asha.h"
#include "coordinator/sweep/importance.h"
#include "coordinator/sweep/sampler.h"
#include "coordinator/synthetic/synthetic.h"

namespace {

using nlohmann::json;
using sweep::Observation;

sweep::SweepSpec spec_of(const json& j) {
  return sweep::parse_sweep_spec(j, "test", ".");
}

json synthetic_job() { return {{"kind", "synthetic"}, {"config", json::object()}}; }

TEST(SweepSampler, TheGridHoldsEveryCombinationExactlyOnce) {
  const sweep::SweepSpec s = spec_of({{"method", "grid"},
                                      {"parameters",
                                       {{"choice", {{"values", {"a", "b", "c"}}}},
                                        {"n", {{"min", 1}, {"max", 4}}},
                                        {"x", {{"value", 0.5}}},
                                        {"lr", {{"values", {1e-3, 1e-2}}}}}},
                                      {"job", synthetic_job()}});
  ASSERT_EQ(sweep::grid_size(s), 24u);
  std::set<std::string> seen;
  for (uint64_t i = 0; i < 24; ++i) {
    const json p = sweep::grid_point(s, i);
    EXPECT_EQ(p["x"], 0.5);
    EXPECT_TRUE(p["n"].is_number_integer());
    seen.insert(p.dump());
  }
  EXPECT_EQ(seen.size(), 24u);
  std::set<std::string> expected;
  for (const char* c : {"a", "b", "c"})
    for (int n = 1; n <= 4; ++n)
      for (double lr : {1e-3, 1e-2}) expected.insert(json({{"choice", c}, {"lr", lr}, {"n", n}, {"x", 0.5}}).dump());
  EXPECT_EQ(seen, expected);
}

struct Moments {
  double mean = 0, sd = 0, lo = INFINITY, hi = -INFINITY;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x, m.lo = std::min(m.lo, x), m.hi = std::max(m.hi, x);
  m.mean /= v.size();
  for (double x : v) m.sd += (x - m.mean) * (x - m.mean);
  m.sd = std::sqrt(m.sd / v.size());
  return m;
}

TEST(SweepSampler, RandomDrawsFollowTheirDistributionsAndRepeatWithTheSeed) {
  const json params = {{"x", {{"distribution", "uniform"}, {"min", -1.0}, {"max", 3.0}}},
                       {"lr", {{"distribution", "log_uniform_values"}, {"min", 1e-4}, {"max", 1e-2}}},
                       {"n", {{"distribution", "int_uniform"}, {"min", 2}, {"max", 6}}},
                       {"y", {{"distribution", "normal"}, {"mu", 1.0}, {"sigma", 0.5}}},
                       {"steps", {{"distribution", "q_uniform"}, {"min", 10}, {"max", 100}, {"q", 10}}},
                       {"noise", {{"distribution", "log_normal"}, {"mu", -2.0}, {"sigma", 0.3}}},
                       {"choice", {{"values", {"a", "b", "c"}}, {"probabilities", {0.6, 0.3, 0.1}}}}};
  const sweep::SweepSpec s = spec_of({{"method", "random"}, {"seed", 7}, {"parameters", params}, {"job", synthetic_job()}});
  const int n = 4000;
  std::vector<double> x, loglr, ints, y, steps, lognoise;
  std::map<std::string, int> choices;
  for (int i = 0; i < n; ++i) {
    const json p = sweep::random_point(s, i);
    x.push_back(p["x"].get<double>());
    loglr.push_back(std::log10(p["lr"].get<double>()));
    ASSERT_TRUE(p["n"].is_number_integer());
    ints.push_back(p["n"].get<double>());
    y.push_back(p["y"].get<double>());
    ASSERT_TRUE(p["steps"].is_number_integer()) << p["steps"];
    steps.push_back(p["steps"].get<double>());
    lognoise.push_back(std::log(p["noise"].get<double>()));
    ++choices[p["choice"].get<std::string>()];
  }
  const Moments mx = moments(x), mlr = moments(loglr), mi = moments(ints), my = moments(y), ms = moments(steps), mn = moments(lognoise);
  EXPECT_NEAR(mx.mean, 1.0, 0.1);
  EXPECT_NEAR(mx.sd, 4 / std::sqrt(12.0), 0.05);
  EXPECT_GE(mx.lo, -1.0);
  EXPECT_LE(mx.hi, 3.0);
  EXPECT_NEAR(mlr.mean, -3.0, 0.05);  // uniform in log10: -4 .. -2
  EXPECT_GE(mlr.lo, -4.0 - 1e-9);
  EXPECT_LE(mlr.hi, -2.0 + 1e-9);
  EXPECT_EQ(mi.lo, 2);
  EXPECT_EQ(mi.hi, 6);
  EXPECT_NEAR(mi.mean, 4.0, 0.1);
  EXPECT_NEAR(my.mean, 1.0, 0.05);
  EXPECT_NEAR(my.sd, 0.5, 0.05);
  for (double v : steps) EXPECT_EQ(std::fmod(v, 10.0), 0.0);
  EXPECT_EQ(ms.lo, 10);
  EXPECT_EQ(ms.hi, 100);
  EXPECT_NEAR(mn.mean, -2.0, 0.05);
  EXPECT_NEAR(mn.sd, 0.3, 0.03);
  EXPECT_NEAR(choices["a"] / double(n), 0.6, 0.03);
  EXPECT_NEAR(choices["b"] / double(n), 0.3, 0.03);
  EXPECT_NEAR(choices["c"] / double(n), 0.1, 0.03);
  // The same seed and draw number: the same point; another seed: another.
  EXPECT_EQ(sweep::random_point(s, 17), sweep::random_point(s, 17));
  sweep::SweepSpec other = s;
  other.seed = 8;
  EXPECT_NE(sweep::random_point(s, 17), sweep::random_point(other, 17));
}

// Trials one after another on the noise-free synthetic objective until one reaches `target`.
int trials_to_target(const sweep::SweepSpec& s, double target, int cap) {
  std::vector<Observation> seen;
  for (int i = 0; i < cap; ++i) {
    const json p = sweep::next_point(s, i, seen);
    const synthetic::Config c = synthetic::parse_config(p, "trial");
    const double value = synthetic::objective(c, 10000);
    if (value <= target) return i + 1;
    seen.push_back({p, Observation::State::kDone, value});
  }
  return cap;
}

TEST(SweepSampler, TpeReachesTheTargetInFewerTrialsThanRandomSearch) {
  const json params = {{"x", {{"min", -2.0}, {"max", 2.0}}},
                       {"y", {{"min", -2.0}, {"max", 2.0}}},
                       {"lr", {{"distribution", "log_uniform_values"}, {"min", 1e-6}, {"max", 1.0}}}};
  // The optimum is 0.01 (1/sqrt(10000)); random search hits within 0.05 of it about once in 650.
  const double target = 0.06;
  std::vector<int> tpe, random;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    json j = {{"method", "bayes"}, {"metric", {{"name", "loss"}}}, {"seed", seed}, {"parameters", params}, {"job", synthetic_job()}};
    tpe.push_back(trials_to_target(spec_of(j), target, 300));
    j["method"] = "random";
    random.push_back(trials_to_target(spec_of(j), target, 300));
  }
  std::sort(tpe.begin(), tpe.end());
  std::sort(random.begin(), random.end());
  std::cout << "trials to reach loss " << target << ": TPE " << testing::PrintToString(tpe) << ", random " << testing::PrintToString(random)
            << std::endl;
  EXPECT_LT(tpe[2] * 2, random[2]);  // the medians, with room to spare
}

TEST(SweepSampler, RunningTrialsSteerTpeAwayFromTheirPoints) {
  const json j = {{"method", "bayes"}, {"metric", {{"name", "loss"}}}, {"seed", 3},
                  {"parameters", {{"x", {{"min", -2.0}, {"max", 2.0}}}}}, {"job", synthetic_job()}};
  const sweep::SweepSpec s = spec_of(j);
  std::vector<Observation> done;
  for (int i = 0; i < 20; ++i) {
    const double x = -2.0 + 4.0 * i / 19;
    done.push_back({json{{"x", x}}, Observation::State::kDone, synthetic::objective(synthetic::parse_config({{"x", x}}, "t"), 100)});
  }
  // Four trials running at the best point seen, x = 0.316: without them TPE suggests near it.
  std::vector<Observation> with_running = done;
  for (int i = 0; i < 4; ++i) with_running.push_back({json{{"x", 0.316}}, Observation::State::kRunning, std::nullopt});
  double near_without = 0, near_with = 0;
  for (int i = 0; i < 40; ++i) {
    near_without += std::abs(sweep::tpe_point(s, 100 + i, done)["x"].get<double>() - 0.316);
    near_with += std::abs(sweep::tpe_point(s, 100 + i, with_running)["x"].get<double>() - 0.316);
  }
  EXPECT_GT(near_with, near_without);
}

TEST(SweepSampler, TrialsStoppedEarlyRankAfterFinishedOnesForTpe) {
  const sweep::SweepSpec s = spec_of({{"method", "bayes"}, {"metric", {{"name", "loss"}}}, {"seed", 4},
                                      {"parameters", {{"x", {{"min", -2.0}, {"max", 2.0}}}}}, {"job", synthetic_job()}});
  // Finished trials around x = -1.5 (their best), and trials stopped at step 5 near x = 1.5 whose
  // early losses look lower but are not comparable.
  std::vector<Observation> seen;
  for (int i = 0; i < 16; ++i) {
    const double x = -2.0 + i * 0.1;
    seen.push_back({json{{"x", x}}, Observation::State::kDone, 1.0 + std::abs(x + 1.5), 100});
  }
  for (int i = 0; i < 8; ++i) seen.push_back({json{{"x", 1.3 + i * 0.05}}, Observation::State::kStopped, 0.5, 5});
  double mean = 0;
  for (int i = 0; i < 20; ++i) mean += sweep::tpe_point(s, 100 + i, seen)["x"].get<double>() / 20;
  EXPECT_LT(mean, 0.0);
}

TEST(SweepSampler, TpeBeforeItsStartupTrialsDrawsAsRandomDoes) {
  const sweep::SweepSpec s = spec_of({{"method", "bayes"}, {"metric", {{"name", "loss"}}}, {"seed", 5},
                                      {"parameters", {{"x", {{"min", -2.0}, {"max", 2.0}}}}}, {"job", synthetic_job()}});
  std::vector<Observation> seen(9, Observation{json{{"x", 1.0}}, Observation::State::kDone, 1.0});
  EXPECT_EQ(sweep::tpe_point(s, 9, seen), sweep::random_point(s, 9));
}

TEST(SweepImportance, RanksTheParametersTheObjectiveDependsOn) {
  // loss grows with x over [0.3, 2] (by up to 2.9) and with y over [-0.2, 0.8] (by up to 1); seed is unused.
  const sweep::SweepSpec s = spec_of({{"method", "random"}, {"seed", 2},
                                      {"parameters", {{"x", {{"min", 0.3}, {"max", 2.0}}},
                                                      {"y", {{"min", -0.2}, {"max", 0.8}}},
                                                      {"seed", {{"min", 0}, {"max", 1000}}}}},
                                      {"job", synthetic_job()}});
  std::vector<json> points;
  std::vector<double> values;
  for (int i = 0; i < 60; ++i) {
    points.push_back(sweep::random_point(s, i));
    values.push_back(synthetic::objective(synthetic::parse_config(points.back(), "t"), 100));
  }
  const std::vector<sweep::ParameterImportance> imp = sweep::parameter_importance(s, points, values);
  std::map<std::string, sweep::ParameterImportance> by;
  double total = 0;
  for (const auto& p : imp) by[p.path] = p, total += *p.importance;
  EXPECT_NEAR(total, 1.0, 1e-9);
  EXPECT_GT(*by["x"].importance, 0.6);
  EXPECT_GT(*by["y"].importance, *by["seed"].importance);
  EXPECT_GT(*by["x"].correlation, 0.9);
  EXPECT_LT(std::abs(*by["seed"].correlation), 0.35);
  // Too few trials with a metric: nothing to say.
  const auto few = sweep::parameter_importance(s, {points[0], points[1]}, {1.0, 2.0});
  EXPECT_FALSE(few[0].importance.has_value());
}

TEST(Asha, RungsAreMinStepsTimesPowersOfEtaBelowMaxSteps) {
  sweep::EarlyTerminate e;
  e.enabled = true;
  e.min_steps = 5;
  e.eta = 3;
  e.max_steps = 135;
  EXPECT_EQ(sweep::rung_step(e, 0), 5);
  EXPECT_EQ(sweep::rung_step(e, 1), 15);
  EXPECT_EQ(sweep::rung_step(e, 2), 45);
  EXPECT_EQ(sweep::rung_step(e, 3), 0);  // 135 is the last step, not a rung
  e.max_steps = 0;
  EXPECT_EQ(sweep::rung_step(e, 3), 135);
  EXPECT_EQ(sweep::rung_step(e, 60), 0);  // past int64
}

TEST(Asha, ATrialGoesOnOnlyInTheTopOneOverEtaOfItsRung) {
  // Minimizing, eta 3.
  EXPECT_TRUE(sweep::asha_continues({}, 5.0, 3, false));           // the first always
  EXPECT_FALSE(sweep::asha_continues({4.0}, 5.0, 3, false));       // 2 values: keep 1
  EXPECT_TRUE(sweep::asha_continues({6.0}, 5.0, 3, false));
  EXPECT_TRUE(sweep::asha_continues({1.0, 2.0, 3.0}, 1.5, 3, false));   // 4 values: keep 2; one ahead
  EXPECT_FALSE(sweep::asha_continues({1.0, 2.0, 3.0}, 2.5, 3, false));  // two ahead
  EXPECT_TRUE(sweep::asha_continues({1.0}, 1.0, 3, false));        // a tie is not ahead
  EXPECT_FALSE(sweep::asha_continues({1.0}, NAN, 3, false));       // NaN is the worst
  EXPECT_TRUE(sweep::asha_continues({1.0}, 2.0, 3, true));         // maximizing
}

}  // namespace
