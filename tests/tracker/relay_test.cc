// The relay log and run seeds (tracker/relay/relay.h): what a worker forwards from a job's
// database is exactly what was applied there, forwarding it twice changes nothing, and a run
// exported from one database and imported into a new one continues there with the same
// sequence numbers and artifact version numbers.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/test_paths.h"
#include "tracker/db/schema.h"
#include "tracker/query/query.h"
#include "tracker/relay/relay.h"
#include "tracker/run/run.h"
#include "tracker/store/apply.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace tracker {
namespace {

std::string fresh(const std::string& name) {
  const std::string path = test_path(name);
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
  fs::remove_all(path + ".artifacts");
  return path;
}

// Applies every relay log entry of `from` after `after` to the database `to` in one
// transaction, as the coordinator does, copying artifact files first as the upload does (those
// `from` has deleted since are accepted as missing); returns the last entry's number.
int64_t forward(const std::string& from, const std::string& to, int64_t after = 0) {
  auto source = open_database(from, OpenMode::kReadOnly);
  auto target = open_database(to, OpenMode::kReadWrite);
  const ContentStore source_content(from), target_content(to);
  Applier applier(*target, target_content);
  {
    WriteTransaction tx(*target);
    for (const RelayEntry& e : read_relay_log(*source, after, 1000000, 1u << 30)) {
      const Event event = event_from_json(json::parse(e.event));
      if (const auto* a = std::get_if<ArtifactLogged>(&event.body))
        for (const ArtifactFile& f : a->files) {
          if (source_content.has(f.sha256))
            target_content.copy_from(source_content, f.sha256);
          else
            applier.accept_missing({f.sha256});
        }
      applier.apply(event);
      after = e.id;
    }
    applier.finish_batch();
    tx.commit();
  }
  applier.committed();
  return after;
}

std::vector<std::pair<int64_t, double>> losses(const std::string& path, int64_t run) {
  std::vector<std::pair<int64_t, double>> out;
  for (const Bucket& b : Query(path).points(run, "loss", 0, 1 << 30)) out.emplace_back(b.last_step, b.last);
  return out;
}

TEST(RelayLog, HoldsWhatWasAppliedInOrderAndOnlyInMarkedDatabases) {
  const std::string plain = fresh("relay_plain.db"), marked = fresh("relay_marked.db");
  create_relay_database(marked);
  for (const std::string& path : {plain, marked}) {
    Store store(path);
    tracker::Run run = tracker::Run::create(store, {"p", "r"});
    run.log(1, {{"loss", 2.0}});
    run.log(2, {{"loss", 1.5}});
    run.log_console("stdout", "hello");
    // A replayed event (the same run and seq) is a duplicate: applied and logged once.
    store.submit(Event{run.uid(), 2, Metrics{1, 0, {{"loss", 99.0}}}});
    run.finish();
  }
  auto p = open_database(plain, OpenMode::kReadOnly);
  EXPECT_EQ(relay_log_end(*p), 0);
  auto m = open_database(marked, OpenMode::kReadOnly);
  const std::vector<RelayEntry> log = read_relay_log(*m, 0, 100, 1 << 20);
  ASSERT_EQ(log.size(), 5u);
  std::vector<std::string> types;
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i].id, static_cast<int64_t>(i + 1));
    const Event e = event_from_json(json::parse(log[i].event));
    EXPECT_EQ(e.seq, i + 1);
    types.push_back(type_name(e.body));
  }
  EXPECT_EQ(types, (std::vector<std::string>{"run_created", "metrics", "metrics", "console", "run_finished"}));
  EXPECT_EQ(relay_log_end(*m), 5);
  // Paging: after an entry, by count and by bytes (always at least one entry).
  EXPECT_EQ(read_relay_log(*m, 3, 100, 1 << 20).front().id, 4);
  EXPECT_EQ(read_relay_log(*m, 0, 2, 1 << 20).size(), 2u);
  EXPECT_EQ(read_relay_log(*m, 0, 100, 1).size(), 1u);
}

TEST(RelayLog, ForwardingTwiceAppliesOnce) {
  const std::string job = fresh("relay_job.db"), central = fresh("relay_central.db");
  create_relay_database(job);
  int64_t run_id;
  {
    Store store(job);
    tracker::Run run = tracker::Run::create(store, {"p", "r"});
    run_id = run.id();
    for (int step = 0; step < 50; ++step) run.log(step, {{"loss", 5.0 - step * 0.1}});
    const std::string file = test_path("relay_weights.bin");
    write_file(file, "weights-1");
    run.log_artifact("ckpt", "checkpoint", file);
    run.finish();
  }
  const int64_t end = forward(job, central);
  EXPECT_EQ(forward(job, central), end);  // everything again: all duplicates
  const RunRecord mine = Query(job).run(run_id), theirs = Query(central).runs().at(0);
  EXPECT_EQ(theirs.uid, mine.uid);
  EXPECT_EQ(theirs.status, "finished");
  EXPECT_EQ(losses(central, theirs.id), losses(job, run_id));
  EXPECT_EQ(Query(central).artifact("ckpt:latest").files.at(0).sha256, Query(job).artifact("ckpt:latest").files.at(0).sha256);
}

TEST(RunSeed, ContinuesTheSequenceAndTheVersionNumbers) {
  const std::string first = fresh("seed_first.db"), central = fresh("seed_central.db"), second = fresh("seed_second.db");
  create_relay_database(first);
  std::string uid;
  {
    Store store(first);
    tracker::Run run = tracker::Run::create(store, {"p", "r", "g", {"t"}, "notes", {{"lr", 0.1}}});
    uid = run.uid();
    for (int step = 0; step < 30; ++step) run.log(step, {{"loss", 3.0 - step * 0.05}});
    run.log(0, {{"system/cpu_percent", 50.0}});
    for (int v = 0; v < 4; ++v) {  // versions 0..3; 0 and 1 deleted: the numbers have a gap
      const std::string file = test_path("seed_ckpt.bin");
      write_file(file, "weights-" + std::to_string(v));
      run.log_artifact("ckpt-x", "checkpoint", file, {{"step", 10 * v}}, v == 2 ? std::vector<std::string>{"best"} : std::vector<std::string>{});
    }
    run.delete_artifact_version("ckpt-x:v0");
    run.delete_artifact_version("ckpt-x:v1");
    run.log(30, {{"loss", 1.0}});  // written, then lost with its machine before a checkpoint
  }
  forward(first, central);
  const RunRecord record = Query(central).runs().at(0);

  // The seed, as the coordinator hands it to the next machine.
  auto db = open_database(central, OpenMode::kReadOnly);
  const json seed = export_run_seed(*db, uid);
  EXPECT_THROW(export_run_seed(*db, "nosuchrun"), NotFound);
  const int64_t id = import_run_seed(second, seed);
  EXPECT_EQ(id, record.id);
  EXPECT_THROW(import_run_seed(second, seed), std::invalid_argument);  // never over an existing file
  const RunRecord seeded = Query(second).run(id);
  EXPECT_EQ(seeded.uid, uid);
  EXPECT_EQ(seeded.config, record.config);
  EXPECT_EQ(seeded.tags, record.tags);
  EXPECT_EQ(seeded.summary["system/cpu_percent"]["last_step"], 0);
  const ArtifactVersion latest = Query(second).artifact("ckpt-x:latest");
  EXPECT_EQ(latest.version, 3);
  EXPECT_EQ(Query(second).artifact("ckpt-x:best").version, 2);
  EXPECT_THROW(Query(second).artifact("ckpt-x:v1"), NotFound);

  // Resumed there from step 20 (the checkpoint's), it goes on where the central copy stands.
  int64_t after;
  {
    auto c = open_database(second, OpenMode::kReadOnly);
    after = relay_log_end(*c);
  }
  EXPECT_EQ(after, 0);  // the seed itself is not relayed
  {
    Store store(second);
    ContentStore(second).copy_from(ContentStore(central), latest.files.at(0).sha256);
    tracker::Run run = tracker::Run::resume(store, id, 20);
    for (int step = 21; step < 40; ++step) run.log(step, {{"loss", 2.0 - step * 0.01}});
    const std::string file = test_path("seed_ckpt.bin");
    write_file(file, "weights-4");
    EXPECT_EQ(run.log_artifact("ckpt-x", "checkpoint", file).version, 4);
    run.delete_artifact_version("ckpt-x:v3");
    run.finish();
  }
  forward(second, central);
  const RunRecord done = Query(central).run(record.id);
  EXPECT_EQ(done.status, "finished");
  const auto curve = losses(central, record.id);
  ASSERT_EQ(curve.size(), 40u);  // steps 0..39 once each: 21..30 of the first machine replaced
  for (size_t i = 0; i < curve.size(); ++i) EXPECT_EQ(curve[i].first, static_cast<int64_t>(i));
  EXPECT_DOUBLE_EQ(curve[30].second, 2.0 - 0.3);
  EXPECT_EQ(Query(central).artifact("ckpt-x:latest").version, 4);
  EXPECT_THROW(Query(central).artifact("ckpt-x:v3"), NotFound);
}

TEST(RunSeed, AMalformedSeedNamesTheField) {
  json seed = {{"run", {{"id", 1}, {"uid", "abc"}}}, {"summaries", json::array()}, {"artifacts", json::array()}};
  try {
    import_run_seed(fresh("seed_bad.db"), seed);
    FAIL() << "accepted a seed without a project";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "run seed: run.project is missing");
  }
}

}  // namespace
}  // namespace tracker
