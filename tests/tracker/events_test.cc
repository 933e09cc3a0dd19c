// Tracker events: their JSON form (stable, strict) and their application to a store (one
// path, idempotent under replay).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <mutex>

#include "common/util/sha256.h"
#include "tests/test_paths.h"
#include "tests/tracker/db_dump.h"
#include "tracker/events/events.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"
#include "tracker/store/apply.h"
#include "tracker/store/store.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace tracker {
namespace {

// One event of every type, as in the header's table.
std::vector<Event> one_of_each() {
  return {
      {"u1", 1, RunCreated{"i3", "demo", "g", {"a"}, "n", {{"lr", 0.001}}, 1700000000.5}},
      {"u1", 2, RunResumed{120, 1700000001.0}},
      {"u1", 3, RunFinished{"stopped", 1700000002.0}},
      {"u1", 4, Metrics{7, 1700000003.25, {{"train/loss", 2.5}, {"x", NAN}, {"y", INFINITY}, {"z", -INFINITY}}}},
      {"u1", 5, MetricGoal{"val/loss", "min"}},
      {"u1", 6, Table{"samples", 10, {"prompt", "output"}, json::array({json::array({"hi", "hi there"})})}},
      {"u1", 7, Histogram{"w", 3, -1.0, 1.0, {1, 0, 2}}},
      {"u1", 8, ConsoleLine{"stderr", "step 1/10", 1700000004.0}},
      {"u1", 9, ConfigSet{{{"lr", 0.01}}}},
      {"u1", 10, Heartbeat{1700000005.0}},
      {"u1", 11, ArtifactLogged{"ckpt", "checkpoint", {{"step", 10}}, {"best"}, {{"a.bin", std::string(64, 'a'), 3}}, 1700000006.0}},
      {"u1", 12, ArtifactUsed{"ckpt:best"}},
      {"", 0, ArtifactAlias{"ckpt:v0", "best"}},
      {"", 0, ArtifactDeleted{"ckpt:v1"}},
  };
}

// The JSON form is a contract between processes of different builds: a change here is a
// protocol change.
TEST(Events, TheJsonFormIsStable) {
  const std::vector<std::string> golden = {
      R"({"config":{"lr":0.001},"group":"g","name":"demo","notes":"n","project":"i3","run":"u1","seq":1,"tags":["a"],"type":"run_created","wall":1700000000.5})",
      R"({"from_step":120,"run":"u1","seq":2,"type":"run_resumed","wall":1700000001.0})",
      R"({"run":"u1","seq":3,"status":"stopped","type":"run_finished","wall":1700000002.0})",
      R"({"run":"u1","seq":4,"step":7,"type":"metrics","values":{"train/loss":2.5,"x":"nan","y":"inf","z":"-inf"},"wall":1700000003.25})",
      R"({"goal":"min","key":"val/loss","run":"u1","seq":5,"type":"metric_goal"})",
      R"({"columns":["prompt","output"],"name":"samples","rows":[["hi","hi there"]],"run":"u1","seq":6,"step":10,"type":"table"})",
      R"({"counts":[1,0,2],"hi":1.0,"key":"w","lo":-1.0,"run":"u1","seq":7,"step":3,"type":"histogram"})",
      R"({"line":"step 1/10","run":"u1","seq":8,"stream":"stderr","type":"console","wall":1700000004.0})",
      R"({"config":{"lr":0.01},"run":"u1","seq":9,"type":"config"})",
      R"({"run":"u1","seq":10,"type":"heartbeat","wall":1700000005.0})",
      R"({"aliases":["best"],"artifact_type":"checkpoint","files":[{"path":"a.bin","sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":3}],"metadata":{"step":10},"name":"ckpt","run":"u1","seq":11,"type":"artifact_logged","wall":1700000006.0})",
      R"({"ref":"ckpt:best","run":"u1","seq":12,"type":"artifact_used"})",
      R"({"alias":"best","ref":"ckpt:v0","run":"","seq":0,"type":"artifact_alias"})",
      R"({"ref":"ckpt:v1","run":"","seq":0,"type":"artifact_deleted"})",
  };
  const std::vector<Event> events = one_of_each();
  ASSERT_EQ(events.size(), golden.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(to_json(events[i]).dump(), golden[i]);
    // And back: reading the form gives an event that writes the same form.
    const Event back = event_from_json(json::parse(golden[i]));
    EXPECT_EQ(back.run, events[i].run);
    EXPECT_EQ(back.seq, events[i].seq);
    EXPECT_EQ(back.body.index(), events[i].body.index());
    EXPECT_EQ(to_json(back).dump(), golden[i]);
  }
  const Event metrics = event_from_json(json::parse(golden[3]));
  const auto& m = std::get<Metrics>(metrics.body);
  EXPECT_TRUE(std::isnan(m.values[1].second));
  EXPECT_EQ(m.values[2].second, INFINITY);
  EXPECT_EQ(m.values[3].second, -INFINITY);
}

TEST(Events, MalformedEventsAreRefusedNamingTheField) {
  auto error = [](const std::string& text) -> std::string {
    try {
      event_from_json(json::parse(text));
    } catch (const EventError& e) {
      return e.what();
    }
    return "(accepted)";
  };
  const std::string ok = R"({"run":"u1","seq":10,"type":"heartbeat","wall":5.0})";
  EXPECT_EQ(error(ok), "(accepted)");
  EXPECT_EQ(error("[1, 2]"), "an event must be a JSON object");
  EXPECT_EQ(error(R"({"run":"u1","seq":1})"), "an event needs a \"type\" string");
  EXPECT_EQ(error(R"({"run":"u1","seq":1,"type":"explode"})"), "unknown event type \"explode\"");
  EXPECT_EQ(error(R"({"run":"u1","seq":1,"type":"heartbeat"})"), "event heartbeat: \"wall\" is missing");
  EXPECT_EQ(error(R"({"run":"u1","seq":1,"type":"heartbeat","wall":"now"})"), "event heartbeat: \"wall\" must be a number");
  EXPECT_EQ(error(R"({"run":"u1","seq":-1,"type":"heartbeat","wall":5})"), "event heartbeat: \"seq\" must be an integer ≥ 0");
  EXPECT_EQ(error(R"({"run":"u1","seq":1,"type":"heartbeat","wall":5,"extra":1})"),
            "event heartbeat: \"extra\" is not a field of a heartbeat event");
  EXPECT_EQ(error(R"({"run":"u1","seq":1,"type":"metrics","step":1,"wall":5,"values":{"loss":"low"}})"),
            "event metrics: \"values.loss\" must be a number, \"nan\", \"inf\" or \"-inf\"");
  EXPECT_EQ(error(R"({"run":"u1","seq":1,"type":"run_finished","status":"exploded","wall":5})"),
            "event run_finished: 'exploded' is not a final status (finished, failed, stopped, crashed, early-stopped, cancelled)");
  EXPECT_EQ(error(R"({"run":"","seq":1,"type":"heartbeat","wall":5})"), "event heartbeat: a heartbeat event needs its run's uid");
  EXPECT_NE(error(R"({"run":"u1","seq":1,"type":"table","name":"t","step":1,"columns":["a","b"],"rows":[["x"]]})")
                .find("row 0 does not have 2 values"),
            std::string::npos);
  EXPECT_NE(error(R"({"run":"u1","seq":1,"type":"artifact_logged","name":"a","artifact_type":"t","metadata":{},"aliases":[],)"
                  R"("files":[{"path":"../etc/passwd","sha256":")" + std::string(64, 'a') + R"(","size":1}],"wall":1})")
                .find("refusing file path '../etc/passwd'"),
            std::string::npos);
  EXPECT_NE(error(R"({"run":"u1","seq":1,"type":"metrics","step":1,"wall":5,"values":{")" + std::string(300, 'k') + R"(":1}})")
                .find("must be 1..256 bytes"),
            std::string::npos);
}

// A Sink that records what a Run sends on its way to a real store.
class Recorder : public Sink {
 public:
  explicit Recorder(Store& store) : store_(store) {}
  void submit(Event e) override {
    record(e);
    store_.submit(std::move(e));
  }
  std::future<Applied> submit_for_result(Event e) override {
    record(e);
    return store_.submit_for_result(std::move(e));
  }
  void flush() override { store_.flush(); }
  ContentStore& content() override { return store_.content(); }
  std::vector<Event> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  void record(const Event& e) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(e);
  }
  Store& store_;
  std::mutex mu_;
  std::vector<Event> events_;
};

// What a run writes is its stream of events: applying that stream (through its JSON form) to a
// fresh database gives the same database, and applying it again, whole or from any point, as a
// reconnecting relay would, changes nothing.
TEST(Events, AReplayedStreamGivesTheSameDatabaseAndChangesNothing) {
  const std::string original = test_path("original.db"), copy = test_path("copy.db");
  const fs::path files = test_path("files");
  write_file(files / "v0" / "weights.bin", "weights zero");
  write_file(files / "v1" / "weights.bin", "weights one");
  std::vector<Event> stream;
  {
    Store store(original);
    Recorder recorder(store);
    tracker::Run run = tracker::Run::create(recorder, {"p", "replayed", "g", {"t"}, "notes", {{"lr", 0.1}}});
    run.define_metric("loss", Goal::kMinimize);
    for (int step = 0; step < 300; ++step) run.log(step, {{"loss", 300.0 - step}, {"acc", step % 7 == 0 ? NAN : 0.5}});
    run.log(5, {{"system/cpu_percent", 12.5}});
    run.log_table("samples", 100, {"prompt", "output"}, json::array({json::array({"a", "b"})}));
    run.log_table("samples", 250, {"prompt", "output"}, json::array({json::array({"c", "d"})}));
    run.log_histogram("w", 200, {1, 2, 3});
    run.log_console("stdout", "hello");
    run.log_artifact("ckpt", "checkpoint", (files / "v0").string(), {{"step", 100}});
    run.log_artifact("ckpt", "checkpoint", (files / "v1").string(), {{"step", 200}}, {"best"});
    run.delete_artifact_version("ckpt:v0");
    run.use_artifact("ckpt:best");
    run.set_config({{"lr", 0.05}});
    run.heartbeat();
    run.finish("stopped");
    stream = recorder.events();
    // The run resumed from step 150 (as training does after a crash) and carried on.
    uint64_t seq = stream.back().seq;
    const double wall = 1800000000;
    std::vector<Event> more = {{run.uid(), ++seq, RunResumed{150, wall}},
                               {run.uid(), ++seq, Metrics{151, wall + 1, {{"loss", -1.0}}}},
                               {run.uid(), ++seq, ConsoleLine{"stderr", "resumed", wall + 2}},
                               {run.uid(), ++seq, RunFinished{"finished", wall + 3}}};
    for (const Event& e : more) {
      store.submit(e);
      stream.push_back(e);
    }
    store.flush();
  }
  ASSERT_GT(stream.size(), 300u);
  // Through the JSON form, as between processes.
  for (Event& e : stream) e = event_from_json(json::parse(to_json(e).dump()));

  Store store(copy);
  // The receiver holds the artifact files before their events, as a relay sends them first.
  for (const char* v : {"v0", "v1"}) store.content().put((files / v / "weights.bin").string(), "weights.bin");
  for (const Event& e : stream) store.submit(e);
  store.flush();
  const std::string once = db_dump(copy);
  EXPECT_EQ(once, db_dump(original));
  EXPECT_FALSE(store.content().has(util::sha256_hex("weights zero"))) << "ckpt:v0's file outlived its delete";

  // Replays: everything again, then from the middle on (a relay that lost its acknowledgement).
  for (const Event& e : stream) store.submit(e);
  for (size_t i = stream.size() / 2; i < stream.size(); ++i) store.submit(stream[i]);
  store.flush();
  EXPECT_EQ(db_dump(copy), once) << "a replayed event changed the database";

  Query q(copy);
  const RunRecord r = q.run(1);
  EXPECT_EQ(r.status, "finished");
  EXPECT_EQ(r.summary["loss"]["count"], 152);  // steps 0..150 kept, 151 logged after the resume
  EXPECT_EQ(q.table_steps(1, "samples"), (std::vector<int64_t>{100}));
  EXPECT_EQ(q.console(1).size(), 2u);
  EXPECT_EQ(q.artifacts().size(), 1u);
  Stmt seq(q.db(), "SELECT event_seq FROM runs WHERE id = 1");
  ASSERT_TRUE(seq.step());
  EXPECT_EQ(static_cast<uint64_t>(seq.int64(0)), stream.back().seq);
}

// Events a store cannot apply fail alone when their producer waits for them, and say why.
TEST(Events, AnEventThatCannotApplyFailsAloneWithATypedError) {
  const std::string path = test_path("a.db");
  Store store(path);
  tracker::Run run = tracker::Run::create(store, {"p"});
  EXPECT_THROW(store.apply({"no-such-run", 1, Heartbeat{1.0}}), NotFound);
  EXPECT_THROW(store.apply({"", 0, Heartbeat{1.0}}), std::invalid_argument);  // unchecked, still refused
  EXPECT_THROW(run.use_artifact("nothing:v3"), NotFound);
  EXPECT_THROW(store.apply({"", 0, ArtifactLogged{"x", "t", json::object(), {}, {{"f", std::string(64, 'b'), 1}}, 1.0}}),
               MissingContent);
  run.log(1, {{"loss", 1.0}});
  run.finish();
  EXPECT_EQ(Query(path).run(run.id()).summary["loss"]["count"], 1);
}

}  // namespace
}  // namespace tracker
