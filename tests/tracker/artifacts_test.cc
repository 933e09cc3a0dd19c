// SHA-256, artifacts (versions, dedup, aliases, lineage, integrity), sync, system metrics.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/test_paths.h"
#include "tests/tracker/db_dump.h"
#include "tracker/db/content.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"
#include "tracker/run/system_metrics.h"
#include "tracker/sync/sync.h"

namespace fs = std::filesystem;

namespace tracker {
namespace {

TEST(Artifacts, VersionsOnlyWhenContentChangesWithAliasesAndLineage) {
  const std::string db = test_path("a.db");
  const fs::path folder = test_path("model");
  write_file(folder / "config.json", "{\"d_model\": 8}");
  write_file(folder / "weights" / "model.safetensors", std::string(100000, '\x01'));
  Store store(db);
  tracker::Run producer = tracker::Run::create(store, {"p", "producer"});
  ArtifactVersion v0 = producer.log_artifact("i3-tiny", "model", folder.string(), {{"step", 100}}, {"best"});
  EXPECT_EQ(v0.version, 0);
  EXPECT_EQ(v0.files.size(), 2u);
  EXPECT_EQ(v0.files[1].path, "weights/model.safetensors");
  EXPECT_EQ(v0.size, 100000 + 14);
  EXPECT_EQ(v0.aliases, (std::vector<std::string>{"best", "latest"}));
  EXPECT_EQ(v0.run_uid, producer.uid());

  // Same content again: the same version, no new one.
  ArtifactVersion again = producer.log_artifact("i3-tiny", "model", folder.string());
  EXPECT_EQ(again.id, v0.id);
  // Changed content: v1 takes "latest"; "best" stays on v0 until moved.
  write_file(folder / "config.json", "{\"d_model\": 16}");
  ArtifactVersion v1 = producer.log_artifact("i3-tiny", "model", folder.string(), {{"step", 200}});
  EXPECT_EQ(v1.version, 1);
  EXPECT_EQ(v1.aliases, (std::vector<std::string>{"latest"}));
  EXPECT_EQ(Query(db).artifact("i3-tiny:best").version, 0);
  set_alias(store, "i3-tiny", "best", 1);
  EXPECT_EQ(Query(db).artifact("i3-tiny:best").version, 1);
  EXPECT_THROW(producer.log_artifact("i3-tiny", "dataset", folder.string()), std::invalid_argument);
  EXPECT_THROW(producer.log_artifact("bad:name", "model", folder.string()), std::invalid_argument);
  EXPECT_THROW(producer.log_artifact("x", "model", (folder / "nope").string()), std::invalid_argument);

  tracker::Run consumer = tracker::Run::create(store, {"p", "consumer"});
  ArtifactVersion used = consumer.use_artifact("i3-tiny:v0");
  EXPECT_EQ(used.id, v0.id);
  EXPECT_THROW(consumer.use_artifact("i3-tiny:v7"), std::invalid_argument);
  EXPECT_THROW(consumer.use_artifact("nothing"), std::invalid_argument);
  store.flush();

  ArtifactVersion found = Query(db).artifact("i3-tiny:v0");
  EXPECT_EQ(found.used_by, (std::vector<std::string>{consumer.uid()}));
  EXPECT_EQ(found.metadata["step"], 100);
  EXPECT_EQ(Query(db).artifact("i3-tiny").version, 1);  // no alias: latest
  EXPECT_EQ(Query(db).artifacts().size(), 2u);
  // The weights file is stored once although two versions hold it.
  size_t stored = 0;
  for (const auto& e : fs::recursive_directory_iterator(ContentStore(db).root() + "/sha256")) stored += e.is_regular_file();
  EXPECT_EQ(stored, 3u);

  const fs::path out = test_path("out");
  Query(db).fetch_artifact(found, out.string());
  EXPECT_EQ(file_contents(out / "config.json"), "{\"d_model\": 8}");
  EXPECT_EQ(file_contents(out / "weights" / "model.safetensors"), std::string(100000, '\x01'));
}

TEST(Artifacts, ADamagedFileIsAnErrorOnRead) {
  const std::string db = test_path("a.db");
  const fs::path file = test_path("ckpt.bin");
  write_file(file, "precious weights");
  Store store(db);
  ArtifactVersion v = tracker::Run::create(store, {"p"}).log_artifact("ckpt", "checkpoint", file.string());
  const fs::path stored = fs::path(ContentStore(db).root()) / "sha256" / v.files[0].sha256.substr(0, 2) / v.files[0].sha256.substr(2);
  write_file(stored, "precious weightz");
  try {
    Query(db).fetch_artifact(v, test_path("out"));
    FAIL() << "damage not detected";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt:v0: file " + file.filename().string() + " is damaged"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(fs::path(test_path("out")) / file.filename()));
  fs::remove(stored);
  EXPECT_THROW(Query(db).fetch_artifact(v, test_path("out")), std::runtime_error);
}

size_t stored_file_count(const std::string& db) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(ContentStore(db).root())) n += e.is_regular_file();
  return n;  // everything under the store: content files plus anything left in staging
}

TEST(Artifacts, DeletingAVersionRemovesOnlyTheFilesNoOtherVersionHolds) {
  const std::string db = test_path("a.db");
  const fs::path folder = test_path("ckpt");
  Store store(db);
  tracker::Run run = tracker::Run::create(store, {"p"});
  write_file(folder / "config.json", "A");
  write_file(folder / "weights.bin", std::string(5000, 'w'));
  run.log_artifact("ckpt", "checkpoint", folder.string());                      // v0: A, w
  write_file(folder / "config.json", "B");
  run.log_artifact("ckpt", "checkpoint", folder.string(), {}, {"best"});        // v1: B, w
  write_file(folder / "config.json", "C");
  write_file(folder / "weights.bin", std::string(5000, 'x'));
  run.log_artifact("ckpt", "checkpoint", folder.string());                      // v2: C, x (latest)
  tracker::Run reader = tracker::Run::create(store, {"p"});
  reader.use_artifact("ckpt:v1");
  EXPECT_EQ(stored_file_count(db), 5u);

  // Aliased versions are refused, naming the alias; nothing changes.
  try {
    delete_artifact_version(store, "ckpt:v1");
    FAIL() << "deleted a version that is still best";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt:v1 is still best"), std::string::npos) << e.what();
  }
  EXPECT_THROW(delete_artifact_version(store, "ckpt:latest"), std::invalid_argument);
  EXPECT_THROW(delete_artifact_version(store, "ckpt:v9"), std::invalid_argument);
  EXPECT_EQ(Query(db).artifacts().size(), 3u);

  set_alias(store, "ckpt", "best", 2);
  ArtifactVersion gone = delete_artifact_version(store, "ckpt:v1");
  EXPECT_EQ(gone.version, 1);
  EXPECT_EQ(stored_file_count(db), 4u);  // "B" went; "w" stays, v0 holds it
  const fs::path out = test_path("out");
  Query(db).fetch_artifact(Query(db).artifact("ckpt:v0"), out.string());
  EXPECT_EQ(file_contents(out / "weights.bin"), std::string(5000, 'w'));

  delete_artifact_version(store, "ckpt:v0");
  EXPECT_EQ(stored_file_count(db), 2u);  // only v2's files remain
  std::vector<ArtifactVersion> left = Query(db).artifacts();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].version, 2);
  EXPECT_EQ(left[0].aliases, (std::vector<std::string>{"best", "latest"}));

  // Logging v0's content again makes a new version with a new number and stores its files anew.
  write_file(folder / "config.json", "A");
  write_file(folder / "weights.bin", std::string(5000, 'w'));
  ArtifactVersion back = run.log_artifact("ckpt", "checkpoint", folder.string());
  EXPECT_EQ(back.version, 3);
  fs::remove_all(out);
  Query(db).fetch_artifact(back, out.string());
  EXPECT_EQ(file_contents(out / "config.json"), "A");
}

// Two writers on one database (two connections, as two processes would be) keep logging and
// deleting versions that hold the same file: a version is readable for as long as it exists.
TEST(Artifacts, DeletesDoNotLoseFilesAConcurrentWriterIsLogging) {
  const std::string db = test_path("a.db");
  { Store create(db); }
  auto writer = [&](const std::string& name, int* unreadable) {
    Store store(db);
    tracker::Run run = tracker::Run::create(store, {"p"});
    const fs::path shared = test_path(name + "-shared"), own = test_path(name + "-own");
    write_file(shared / "a-weights.bin", std::string(20000, 's'));  // the same content in both writers
    // Stored after a-weights.bin: copying it widens the window between finding a-weights.bin
    // in the store and the transaction that records it, where the other writer may delete it.
    write_file(shared / "z-padding.bin", std::string(1 << 20, name[0]));
    for (int i = 0; i < 40; ++i) {
      ArtifactVersion with_shared = run.log_artifact(name, "checkpoint", shared.string());
      try {
        Query(db).fetch_artifact(with_shared, test_path(name + "-out-" + std::to_string(i)));
      } catch (const std::runtime_error&) {
        ++*unreadable;
      }
      write_file(own / "weights.bin", name + std::to_string(i));
      run.log_artifact(name, "checkpoint", own.string());  // takes "latest"
      delete_artifact_version(store, name + ":v" + std::to_string(with_shared.version));
    }
  };
  int unreadable_a = 0, unreadable_b = 0;
  std::thread a(writer, "a", &unreadable_a), b(writer, "b", &unreadable_b);
  a.join();
  b.join();
  EXPECT_EQ(unreadable_a + unreadable_b, 0);
  EXPECT_EQ(Query(db).artifacts().size(), 80u);  // each writer's 40 "own" versions
}

TEST(Sync, MergesOfflineRunsIdempotently) {
  const std::string local = test_path("local.db"), central = test_path("central.db");
  const fs::path file = test_path("ckpt.bin");
  write_file(file, "weights v0");
  std::string offline_uid;
  {
    Store store(local);
    tracker::Run run = tracker::Run::create(store, {"p", "offline", "", {"laptop"}, "", {{"lr", 0.01}}});
    offline_uid = run.uid();
    run.define_metric("val/loss", Goal::kMinimize);
    for (int step = 0; step < 3000; ++step) run.log(step, {{"train/loss", 5.0 - step * 1e-3}, {"val/loss", 4.0 - step * 1e-3}});
    run.log_table("samples", 1000, {"prompt", "output"}, nlohmann::json::array({nlohmann::json::array({"a", "b"})}));
    run.log_histogram("w", 10, {1, 2, 3});
    run.log_console("stdout", "hello");
    run.log_artifact("ckpt", "checkpoint", file.string(), {}, {"best"});
    run.finish();
  }
  {
    Store store(central);  // the central database already has a run and its own ckpt:v0
    tracker::Run other = tracker::Run::create(store, {"p", "central"});
    other.log(0, {{"train/loss", 9.0}});
    const std::string other_file = test_path("other.bin");
    write_file(other_file, "other weights");
    other.log_artifact("ckpt", "checkpoint", other_file);
    other.finish();
  }
  SyncReport first = sync_databases(local, central);
  EXPECT_EQ(first.runs_added, 1);
  EXPECT_EQ(first.points_added, 6000);
  EXPECT_EQ(first.rows_added, 3);
  EXPECT_EQ(first.artifact_versions_added, 1);
  EXPECT_EQ(first.files_copied, 1);
  const std::string after_first = db_dump(central);

  SyncReport second = sync_databases(local, central);
  EXPECT_EQ(second.runs_added + second.runs_updated + second.points_added + second.rows_added +
                second.artifact_versions_added + second.files_copied, 0);
  EXPECT_EQ(db_dump(central), after_first) << "a second sync changed the target";

  Query q(central);
  auto runs = q.runs({"p"});
  ASSERT_EQ(runs.size(), 2u);
  const RunRecord& r = runs[0].uid == offline_uid ? runs[0] : runs[1];
  EXPECT_EQ(r.uid, offline_uid);
  EXPECT_EQ(r.name, "offline");
  EXPECT_EQ(r.status, "finished");
  EXPECT_EQ(r.tags, nlohmann::json({"laptop"}));
  EXPECT_EQ(r.summary["val/loss"]["goal"], "min");
  EXPECT_DOUBLE_EQ(r.summary["val/loss"]["best"].get<double>(), 4.0 - 2999 * 1e-3);
  EXPECT_EQ(r.summary["train/loss"]["count"], 3000);
  EXPECT_EQ(q.series(r.id, "train/loss", 0, 2999, 10).size(), 10u);
  EXPECT_EQ(q.table_steps(r.id, "samples"), (std::vector<int64_t>{1000}));
  EXPECT_EQ(q.console(r.id).size(), 1u);
  // The synced checkpoint follows the central one: v1, latest, with the offline run's alias.
  ArtifactVersion v = Query(central).artifact("ckpt:best");
  EXPECT_EQ(v.version, 1);
  EXPECT_EQ(v.run_uid, offline_uid);
  EXPECT_EQ(Query(central).artifact("ckpt:latest").id, v.id);
  const fs::path out = test_path("out");
  Query(central).fetch_artifact(v, out.string());
  EXPECT_EQ(file_contents(out / file.filename()), "weights v0");

  // More offline progress syncs as a continuation of the same run.
  {
    Store store(local);
    tracker::Run run = tracker::Run::resume(store, 1);
    run.log(3000, {{"train/loss", 0.5}});
    run.finish();
  }
  SyncReport third = sync_databases(local, central);
  EXPECT_EQ(third.points_added, 1);
  EXPECT_EQ(Query(central).run(r.id).summary["train/loss"]["count"], 3001);
  EXPECT_THROW(sync_databases(local, local), std::invalid_argument);
  EXPECT_THROW(sync_databases(test_path("missing.db"), central), DbError);
}

TEST(SystemMetrics, SamplesThisProcessAndMachine) {
  SystemSampler sampler;
  volatile double sink = 0;
  for (int i = 0; i < 20000000; ++i) sink = sink + i * 0.5;  // some CPU time to measure
  std::map<std::string, double> values;
  for (auto& [k, v] : sampler.sample()) values[k] = v;
  EXPECT_GT(values["system/rss_bytes"], 1e6);
  EXPECT_GT(values["system/cpu_percent"], 0);
  EXPECT_GE(values["system/machine_cpu_percent"], 0);
  EXPECT_LE(values["system/machine_cpu_percent"], 100.0 + 1e-9);
  EXPECT_GT(values["system/machine_memory_used_percent"], 0);
  // No NVML on this machine is normal: GPU keys are present only when it loads.
  const bool any_gpu = std::any_of(values.begin(), values.end(), [](auto& kv) { return kv.first.find("gpu.") != std::string::npos; });
  EXPECT_EQ(any_gpu, sampler.gpu_count() > 0);
}

TEST(SystemMetrics, MonitorLogsSamplesAndHeartbeats) {
  const std::string db = test_path("m.db");
  int64_t id;
  {
    Store store(db);
    tracker::Run run = tracker::Run::create(store, {"p"});
    id = run.id();
    {
      SystemMonitor monitor(run, std::chrono::milliseconds(20));
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
    run.finish();
  }
  Query q(db);
  EXPECT_GE(q.run(id).summary["system/rss_bytes"]["count"].get<int64_t>(), 3);
}

}  // namespace
}  // namespace tracker
