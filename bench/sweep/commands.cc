#include "bench/sweep/commands.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iterator>
#include <iostream>
#include <optional>
#include <thread>

#include "common/util/clock.h"
#include "common/util/files.h"
#include "coordinator/cli/sweep_commands.h"
#include "coordinator/client/client.h"
#include "coordinator/local/local_cluster.h"

namespace sweep {
namespace {

using nlohmann::json;

struct Variant {
  const char* name;
  const char* method;
  bool asha;
};
constexpr Variant kVariants[] = {{"random", "random", false}, {"tpe", "bayes", false}, {"random+asha", "random", true}, {"tpe+asha", "bayes", true}};

struct Outcome {
  bool reached = false;
  double seconds = 0;  // to the target, or to the end of the budget
  int64_t trials = 0;  // made by then
  double best = NAN;   // the best value any trial logged by then
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

Outcome run_once(const Variant& variant, uint64_t seed, const cli::Args& args, const std::string& dir) {
  const int workers = static_cast<int>(args.get_int("workers", 2, 1, 64));
  const int64_t steps = args.get_int("steps", 50, 9, 100000);
  coordinator::LocalOptions options;
  options.workers = workers;
  options.slots_per_worker = 1;
  options.dir = dir;
  options.db_path = dir + "/i3lab.db";
  options.listen = "tcp://127.0.0.1:*";
  coordinator::LocalCluster cluster(options);
  client::Client c(cluster.endpoint());
  const auto hello_deadline = util::Clock::now() + std::chrono::seconds(30);
  while (static_cast<int>(c.call("workers").size()) < workers) {
    if (util::Clock::now() > hello_deadline) throw std::runtime_error("the local workers did not register within 30 s; see " + dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double target = std::stod(args.get("target", "0.19"));
  json definition = {{"method", variant.method},
                     {"metric", {{"name", "loss"}, {"goal", "minimize"}, {"target", target}}},
                     {"parameters",
                      {{"x", {{"distribution", "uniform"}, {"min", -1.0}, {"max", 1.0}}},
                       {"y", {{"distribution", "uniform"}, {"min", -1.0}, {"max", 1.0}}},
                       {"lr", {{"distribution", "log_uniform_values"}, {"min", 1e-5}, {"max", 1e-1}}}}},
                     {"run_cap", args.get_int("budget", 150, 1, 100000)},
                     {"max_concurrent", workers},
                     {"seed", seed},
                     {"job", {{"kind", "synthetic"}, {"config", {{"steps", steps}, {"step_ms", args.get_int("step-ms", 10, 0, 60000)}, {"noise", std::stod(args.get("noise", "0.002"))}, {"seed", seed}}}}}};
  if (variant.asha) definition["early_terminate"] = {{"type", "asha"}, {"min_steps", steps / 9}, {"eta", 3}, {"max_steps", steps}};
  if (args.has("sweep")) {
    // Another sweep (the i3 demo's): its parameters, job, metric and ASHA rungs; this variant's
    // method and seed, and the budget and target given here.
    json given = coordinator::sweep_definition(args.get("sweep"));
    given["method"] = variant.method;
    given["seed"] = seed;
    given["run_cap"] = definition["run_cap"];
    given["max_concurrent"] = workers;
    given["metric"]["target"] = target;
    if (!variant.asha) given.erase("early_terminate");
    else if (!given.contains("early_terminate")) throw cli::UsageError("--sweep " + args.get("sweep") + " has no early_terminate for the ASHA variants");
    definition = std::move(given);
  }
  const auto start = util::Clock::now();
  const int64_t id = c.call("sweep_create", {{"definition", definition}})["id"].get<int64_t>();
  Outcome o;
  while (true) {
    const json s = c.call("sweep_show", {{"id", id}});
    o.seconds = util::seconds_since(start);
    o.trials = static_cast<int64_t>(s["trials"].size());
    if (s["best"].is_object()) o.best = s["best"]["value"].get<double>();
    // The sweep's own rule: some trial logged a value at or below the target (at any step).
    if ((s["best"].is_object() && s["best"]["value"].get<double>() <= target) ||
        s["note"].get<std::string>().find("reached the target") != std::string::npos) {
      o.reached = true;
      break;
    }
    if (s["status"] != "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  c.call("sweep_cancel", {{"id", id}});
  cluster.stop();
  cluster.check();
  return o;
}

int bench_sweep_cmd(const cli::Args& args) {
  const int seeds = static_cast<int>(args.get_int("seeds", 7, 1, 1000));
  // Seeds outside, variants inside: a slow spell of the shared machine falls on every variant.
  struct Tally {
    std::vector<double> seconds, trials, best;
    int reached = 0;
  };
  std::vector<Tally> tally(std::size(kVariants));
  for (int seed = 1; seed <= seeds; ++seed) {
    for (size_t i = 0; i < std::size(kVariants); ++i) {
      const Variant& v = kVariants[i];
      std::optional<util::TempDir> scratch;
      if (!args.has("dir")) scratch.emplace("i3lab-bench-sweep");
      const std::string dir = scratch ? scratch->path() : args.get("dir") + "/" + v.name + "-" + std::to_string(seed);
      const Outcome o = run_once(v, static_cast<uint64_t>(seed), args, dir);
      tally[i].seconds.push_back(o.seconds);
      tally[i].trials.push_back(static_cast<double>(o.trials));
      tally[i].best.push_back(o.best);
      tally[i].reached += o.reached;
      std::cerr << v.name << " seed " << seed << ": " << (o.reached ? "reached" : "missed") << " the target after " << std::fixed
                << std::setprecision(1) << o.seconds << " s, " << o.trials << " trials; best " << std::setprecision(4) << o.best << std::endl;
    }
  }
  json out = json::array();
  for (size_t i = 0; i < std::size(kVariants); ++i) {
    const Tally& t = tally[i];
    out.push_back({{"variant", kVariants[i].name}, {"seeds", seeds}, {"reached", t.reached}, {"median_seconds", median(t.seconds)},
                   {"median_trials", median(t.trials)}, {"median_best", median(t.best)}, {"seconds", t.seconds},
                   {"trials", t.trials}, {"best", t.best}});
  }
  if (args.has("json")) {
    std::cout << out.dump() << std::endl;
    return 0;
  }
  std::cout << std::left << std::setw(14) << "variant" << std::setw(10) << "reached" << std::setw(16) << "median seconds" << std::setw(15) << "median trials" << "median best\n";
  for (const json& r : out)
    std::cout << std::setw(14) << r["variant"].get<std::string>() << std::setw(10)
              << (std::to_string(r["reached"].get<int>()) + "/" + std::to_string(seeds)) << std::setw(16) << std::fixed << std::setprecision(1)
              << r["median_seconds"].get<double>() << std::setw(15) << std::setprecision(0) << r["median_trials"].get<double>()
              << std::setprecision(4) << r["median_best"].get<double>() << "\n";
  return 0;
}

}  // namespace

std::vector<cli::Command> bench_sweep_commands() {
  return {{"bench sweep", "random vs TPE, with and without ASHA: time and trials to a target on the synthetic objective",
           "usage: i3lab bench sweep [--seeds N] [--workers W] [--budget TRIALS] [--target LOSS] [--steps S] [--step-ms MS]\n"
           "                         [--noise SD] [--sweep FILE]\n"
           "                         [--json] [--dir DIR]\n"
           "For each of random, tpe, random+asha and tpe+asha and each seed 1..N (default 7): a coordinator with W\n"
           "local workers of one slot (default 2) runs a sweep of synthetic jobs (i3lab job synthetic: x, y in [-1, 1],\n"
           "lr log-uniform in [1e-5, 0.1]; S steps, default 50, of MS ms, default 10; noise SD, default 0.002), W\n"
           "at a time, at most TRIALS trials (default 150), until a trial's loss reaches LOSS (default 0.19; the optimum is\n"
           "1/sqrt(S)). ASHA: rungs at S/9 steps, eta 3. Reports per variant how many seeds reached the target and\n"
           "the median seconds and trials to it (to the budget's end for a seed that missed), and the median best value.\n"
           "--sweep FILE: compare on that sweep instead (e.g. configs/bench-demo-sweep.json, i3 models): its\n"
           "parameters, job, metric and early_terminate, each variant's method and seed, TRIALS and LOSS from here.\n",
           {{"seeds", "workers", "budget", "target", "steps", "step-ms", "noise", "dir", "sweep"}, {"json"}}, bench_sweep_cmd}};
}

}  // namespace sweep
