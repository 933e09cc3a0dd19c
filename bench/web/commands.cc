#include "bench/web/commands.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "common/util/clock.h"
#include "common/util/files.h"
#include "tracker/run/run.h"
#include "tracker/store/store.h"
#include "web/server/server.h"

namespace web {
namespace {

using util::Clock;
using util::seconds_since;

// One run with an N-point series, a server on a free loopback port, C clients each asking
// for the whole series in B buckets, R times (and for at most --seconds in all).
int bench_http(const cli::Args& args) {
  const int64_t points = args.get_int("points", 1000000, 1000);
  const int clients = static_cast<int>(args.get_int("clients", 16, 1, 256));
  const int requests = static_cast<int>(args.get_int("requests", 50, 1, 100000));
  const int buckets = static_cast<int>(args.get_int("buckets", 1000, 1, 10000));
  const double max_seconds = args.get_double("seconds", 60, 1);
  const util::TempDir dir("i3lab-bench-http");
  const std::string db = dir.path() + "/bench.db";
  nlohmann::ordered_json out;
  out["points"] = points;
  int64_t run_id = 0;
  {
    tracker::Store store(db);
    tracker::Run run = tracker::Run::create(store, {"bench", "series"});
    for (int64_t step = 0; step < points; ++step) run.log(step, {{"loss", std::sin(step * 1e-3)}});
    run.flush();
    run_id = run.id();
  }
  Options options;
  options.db_path = db;
  options.port = 0;
  Server server(options);
  std::thread serving([&] { server.serve(); });
  const std::string path = "/api/v1/runs/" + std::to_string(run_id) + "/series?key=loss&buckets=" + std::to_string(buckets);
  std::mutex mu;
  std::vector<double> ms;
  std::atomic<int> failures{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", server.port());
      client.set_keep_alive(true);
      for (int r = 0; r < requests && seconds_since(start) < max_seconds; ++r) {
        const auto t0 = Clock::now();
        auto res = client.Get(path.c_str());
        const double took = seconds_since(t0) * 1e3;
        if (!res || res->status != 200) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        ms.push_back(took);
      }
    });
  for (auto& t : threads) t.join();
  const double wall = seconds_since(start);
  server.stop();
  serving.join();
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms.empty() ? NAN : ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))]; };
  out["clients"] = clients;
  out["buckets"] = buckets;
  out["requests"] = ms.size();
  out["failures"] = failures.load();
  out["p50_ms"] = pct(0.50);
  out["p99_ms"] = pct(0.99);
  out["requests_per_sec"] = ms.size() / wall;
  std::cout << (args.has("json") ? out.dump() : out.dump(2)) << "\n";
  return failures.load() ? 1 : 0;
}

}  // namespace

std::vector<cli::Command> bench_web_commands() {
  return {
      {"bench http", "HTTP API: series requests under concurrent clients",
       "usage: i3lab bench http [--points N] [--clients C] [--requests R] [--buckets B] [--seconds S] [--json]\n\n"
       "Writes a run with an N-point series (default 1,000,000) into a temporary database, serves it on\n"
       "a free loopback port, and has C clients (16) each ask R times (50) for the whole series in B\n"
       "buckets (1,000), for at most S seconds (60). Prints p50 and p99 latency and requests/s.\n",
       {{"points", "clients", "requests", "buckets", "seconds"}, {"json"}}, bench_http},
  };
}

}  // namespace web
