// The i3lab binary as a user runs it: real processes, real files.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/i3lab_process.h"
#include "tracker/run/run.h"

namespace fs = std::filesystem;

namespace {

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cli_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  std::string file(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  std::string dir_;
};

TEST_F(Cli, HelpAndUsageErrors) {
  I3labResult help = i3lab({"--help"});
  EXPECT_EQ(help.status, 0);
  for (const char* cmd : {"tokenizer build", "model info", "model init", "score", "generate", "train", "eval", "bench model"})
    EXPECT_NE(help.out.find(cmd), std::string::npos) << cmd;
  I3labResult sub = i3lab({"generate", "--help"});
  EXPECT_EQ(sub.status, 0);
  EXPECT_NE(sub.out.find("--top-p"), std::string::npos);

  I3labResult unknown = i3lab({"frobnicate"});
  EXPECT_EQ(unknown.status, 2);
  EXPECT_EQ(unknown.err, "i3lab: unknown command 'frobnicate' (see 'i3lab --help')\n");
  I3labResult flag = i3lab({"model", "info", "--preset", "i3-80m", "--colour"});
  EXPECT_EQ(flag.status, 2);
  EXPECT_EQ(flag.err, "i3lab model info: unknown flag --colour (see 'i3lab model info --help')\n");
  I3labResult sub_unknown = i3lab({"tokenizer", "shred"});
  EXPECT_EQ(sub_unknown.status, 2);
  EXPECT_NE(sub_unknown.err.find("unknown subcommand 'shred'"), std::string::npos);
  I3labResult bad_number = i3lab({"model", "info", "--preset", "i3-80m", "--vocab-size", "many"});
  EXPECT_EQ(bad_number.status, 2);
  EXPECT_NE(bad_number.err.find("--vocab-size expects an integer"), std::string::npos);
  I3labResult bad_preset = i3lab({"model", "info", "--preset", "i3-1t", "--vocab-size", "10"});
  EXPECT_EQ(bad_preset.status, 2);
  EXPECT_NE(bad_preset.err.find("unknown preset \"i3-1t\""), std::string::npos);
}

// `i3lab` is the control plane: it links no LibTorch, knows every command itself (help and
// flag errors need no model program) and hands the model's commands to `i3lab-model` beside it.
TEST_F(Cli, TheControlPlaneLinksNoLibTorchAndHandsModelCommandsOver) {
  FILE* ldd = popen(("ldd " + shell_quote(I3LAB_BINARY) + " 2>&1").c_str(), "r");
  ASSERT_NE(ldd, nullptr);
  std::string libraries;
  std::array<char, 4096> buf;
  for (size_t n; (n = fread(buf.data(), 1, buf.size(), ldd)) > 0;) libraries.append(buf.data(), n);
  ASSERT_EQ(pclose(ldd), 0) << libraries;
  EXPECT_NE(libraries.find("libsqlite3"), std::string::npos) << libraries;
  for (const char* torch : {"libtorch", "libc10", "libgomp", "libopenblas"})
    EXPECT_EQ(libraries.find(torch), std::string::npos) << torch << " in\n" << libraries;

  // A copy of i3lab alone: what needs the model program says so; nothing else needs it.
  const std::string lone = dir_ + "/i3lab";
  fs::copy_file(I3LAB_BINARY, lone);
  auto run = [&](const std::string& args) {
    I3labResult r;
    const std::string err = dir_ + "/err.txt";
    FILE* p = popen((shell_quote(lone) + " " + args + " 2>" + err).c_str(), "r");
    for (size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) r.out.append(buf.data(), n);
    const int raw = pclose(p);
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    r.err = file_contents(err);
    return r;
  };
  const I3labResult help = run("train --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--resume RUN_ID"), std::string::npos) << help.out;
  EXPECT_EQ(run("train --colour").status, 2);
  EXPECT_EQ(run("runs --help").status, 0);
  const I3labResult model = run("model info --preset i3-tiny --vocab-size 10");
  EXPECT_EQ(model.status, 127);
  EXPECT_NE(model.err.find("i3lab: cannot run "), std::string::npos) << model.err;
  EXPECT_NE(model.err.find("/i3lab-model (No such file or directory)"), std::string::npos) << model.err;
  EXPECT_NE(model.err.find("cmake --build build --target i3lab-model"), std::string::npos) << model.err;
}

TEST_F(Cli, ModelInfoParameterCounts) {
  for (auto [vocab, params] : {std::pair<int, long>{35560, 76861160}, {41320, 82765160}}) {
    I3labResult r = i3lab({"model", "info", "--preset", "i3-80m", "--vocab-size", std::to_string(vocab), "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["parameters"], params);
  }
  I3labResult no_vocab = i3lab({"model", "info", "--preset", "i3-80m"});
  EXPECT_EQ(no_vocab.status, 1);
  EXPECT_NE(no_vocab.err.find("vocab_size must be positive"), std::string::npos) << no_vocab.err;
  // Was: a negative count. Shapes past i3lab's limits are errors naming the field.
  I3labResult huge = i3lab({"model", "info", "--preset", "i3-80m", "--vocab-size", "100", "--set", "d_model=4611686018427387904"});
  EXPECT_EQ(huge.status, 1);
  EXPECT_EQ(huge.err, "i3lab model info: error: model config: d_model is 4611686018427387904, over i3lab's limit of 65536; "
                      "use a smaller d_model\n");
}

// Was: ~27 lines of LibTorch stack frames. A model too large for the memory at hand (4 GB of
// embedding under a 4 GB address-space limit) is one line saying what to do.
TEST_F(Cli, AnAllocationFailureIsOneLine) {
  const std::string err = dir_ + "/stderr.txt";
  const std::string cmd = "ulimit -v 4000000; exec " +
                          i3lab_command({"model", "init", "--preset", "i3-tiny", "--vocab-size", "1000000", "--set",
                                         "d_model=1024", "--set", "n_heads=8", "--out", dir_ + "/m"}) +
                          " 2>" + err;
  const int raw = std::system(("sh -c " + shell_quote(cmd)).c_str());
  ASSERT_TRUE(WIFEXITED(raw));
  EXPECT_EQ(WEXITSTATUS(raw), 1);
  const std::string text = file_contents(err);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find("can't allocate memory"), std::string::npos) << text;
  EXPECT_NE(text.find("make the model, batch or context smaller, or free memory"), std::string::npos) << text;
}

TEST_F(Cli, TokenizerBuildEncodeDecode) {
  std::string a = file("a.txt", "once upon a time"), b = file("b.txt", "hello there");
  std::string vocab = dir_ + "/vocab.json";
  I3labResult build = i3lab({"tokenizer", "build", "--out", vocab, a, b});
  ASSERT_EQ(build.status, 0) << build.err;
  I3labResult enc = i3lab({"tokenizer", "encode", "--vocab", vocab, "--text", "Hello time!"});
  ASSERT_EQ(enc.status, 0) << enc.err;
  EXPECT_EQ(enc.out, "[6,9,1,8,2,0]\n");
  I3labResult dec = i3lab({"tokenizer", "decode", "--vocab", vocab, "--ids", "6,9,1,8,2,0"});
  EXPECT_EQ(dec.out, "hello time<UNK>\n");

  std::string jsonl = file("t.jsonl", "{\"text\": \"once upon a time\"}\n{\"text\": \"hello there\"}\n");
  std::string vocab2 = dir_ + "/vocab2.json";
  ASSERT_EQ(i3lab({"tokenizer", "build", "--out", vocab2, "--jsonl-field", "text", jsonl}).status, 0);
  std::ifstream f1(vocab), f2(vocab2);
  std::stringstream s1, s2;
  s1 << f1.rdbuf();
  s2 << f2.rdbuf();
  EXPECT_EQ(s1.str(), s2.str());

  std::string bad = file("bad.txt", "fine text \xff more");
  I3labResult err = i3lab({"tokenizer", "build", "--out", dir_ + "/v3.json", bad});
  EXPECT_EQ(err.status, 1);
  EXPECT_NE(err.err.find(bad + ": invalid UTF-8 lead byte 0xff at byte offset 10"), std::string::npos) << err.err;
  EXPECT_FALSE(fs::exists(dir_ + "/v3.json"));
}

TEST_F(Cli, InitScoreGenerate) {
  std::string text = file("t.txt", "once upon a time there was a little girl. she liked to play.");
  std::string vocab = dir_ + "/vocab.json", model = dir_ + "/model";
  ASSERT_EQ(i3lab({"tokenizer", "build", "--out", vocab, text}).status, 0);
  I3labResult init = i3lab({"model", "init", "--preset", "i3-tiny", "--vocab", vocab, "--seed", "3", "--out", model});
  ASSERT_EQ(init.status, 0) << init.err;
  I3labResult info = i3lab({"model", "info", "--model", model, "--json"});
  ASSERT_EQ(info.status, 0) << info.err;

  I3labResult score = i3lab({"score", "--model", model, "--text", "Once upon a time", "--json"});
  ASSERT_EQ(score.status, 0) << score.err;
  auto j = nlohmann::json::parse(score.out);
  EXPECT_EQ(j["ids"].size(), j["logprobs"].size() + 1);
  for (const auto& lp : j["logprobs"]) EXPECT_LT(lp.get<double>(), 0.0);

  auto gen = [&](const std::string& seed) {
    return i3lab({"generate", "--model", model, "--prompt", "once upon", "--max-new-tokens", "20", "--temperature", "1.5",
                  "--top-k", "10", "--seed", seed, "--json"});
  };
  I3labResult g1 = gen("1"), g2 = gen("1");
  ASSERT_EQ(g1.status, 0) << g1.err;
  auto j1 = nlohmann::json::parse(g1.out), j2 = nlohmann::json::parse(g2.out);
  EXPECT_EQ(j1["ids"], j2["ids"]);
  EXPECT_EQ(j1["text"], j2["text"]);
  EXPECT_EQ(j1["ids"].size(), 20u);
  I3labResult plain = i3lab({"generate", "--model", model, "--prompt", "once", "--max-new-tokens", "5", "--greedy"});
  EXPECT_EQ(plain.status, 0) << plain.err;
  EXPECT_FALSE(plain.out.empty());

  I3labResult missing = i3lab({"generate", "--model", dir_ + "/nope", "--prompt", "x"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("no such directory"), std::string::npos);
  I3labResult bad_p = i3lab({"generate", "--model", model, "--prompt", "x", "--top-p", "2"});
  EXPECT_EQ(bad_p.status, 1);
  EXPECT_NE(bad_p.err.find("top-p must be in (0, 1]"), std::string::npos);
}

TEST_F(Cli, TrackerRunsExportSyncAndArtifacts) {
  const std::string db = dir_ + "/local.db", central = dir_ + "/central.db";
  std::string uid;
  {
    tracker::Store store(db);
    tracker::RunSpec spec;
    spec.project = "demo";
    spec.name = "small";
    spec.config = {{"lr", 0.01}};
    tracker::Run run = tracker::Run::create(store, spec);
    uid = run.uid();
    for (int step = 0; step < 3; ++step) run.log(step, {{"loss", 3.0 - step}, {"acc", step == 1 ? NAN : 0.5}});

    run.log_artifact("notes", "text", file("notes.txt", "remember this"));
    run.finish();
  }
  I3labResult runs = i3lab({"runs", "--db", db, "--json"});
  ASSERT_EQ(runs.status, 0) << runs.err;
  auto list = nlohmann::json::parse(runs.out);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "small");
  EXPECT_EQ(list[0]["summary"]["loss"]["last"], 1.0);
  I3labResult table = i3lab({"runs", "--db", db, "--where", "config.lr<0.1"});
  EXPECT_NE(table.out.find("small"), std::string::npos);
  EXPECT_NE(table.out.find("acc=0.5 loss=1 "), std::string::npos) << table.out;  // for people: 5 digits

  EXPECT_EQ(i3lab({"runs", "--db", db, "--where", "config.lr>0.1", "--json"}).out, "[]\n");

  I3labResult csv = i3lab({"export-history", "--db", db, "--run", "1"});
  ASSERT_EQ(csv.status, 0) << csv.err;
  std::stringstream lines(csv.out);
  std::string header, row0, row1;
  std::getline(lines, header);
  std::getline(lines, row0);
  std::getline(lines, row1);
  EXPECT_EQ(header, "step,wall,acc,loss");
  EXPECT_EQ(row1.substr(0, 2), "1,");
  EXPECT_EQ(row1.substr(row1.find(',', 2)), ",nan,2");
  // System metrics have their own axis and export.
  const std::string with_system = dir_ + "/system.db";
  {
    tracker::Store store(with_system);
    tracker::Run run = tracker::Run::create(store, {"demo"});
    run.log(0, {{"loss", 1.0}});
    run.log(0, {{"system/cpu_percent", 100.0 / 3}});  // sample 0, ~10 s in: not training step 0
    run.log(1, {{"system/cpu_percent", 50.0}});
    run.finish();
  }
  I3labResult training = i3lab({"export-history", "--db", with_system, "--run", "1"});
  EXPECT_EQ(training.out.substr(0, training.out.find('\n')), "step,wall,loss");
  EXPECT_EQ(std::count(training.out.begin(), training.out.end(), '\n'), 2);
  I3labResult system = i3lab({"export-history", "--db", with_system, "--run", "1", "--system"});
  ASSERT_EQ(system.status, 0) << system.err;
  std::stringstream system_lines(system.out);
  std::getline(system_lines, header);
  std::getline(system_lines, row0);
  EXPECT_EQ(header, "sample,wall,system/cpu_percent");
  EXPECT_EQ(row0.substr(row0.rfind(',')), ",33.333333333333336");
  EXPECT_EQ(std::count(system.out.begin(), system.out.end(), '\n'), 3);

  I3labResult sync = i3lab({"sync", "--from", db, "--to", central, "--json"});
  ASSERT_EQ(sync.status, 0) << sync.err;
  EXPECT_EQ(nlohmann::json::parse(sync.out)["points_added"], 6);
  EXPECT_EQ(nlohmann::json::parse(i3lab({"sync", "--from", db, "--to", central, "--json"}).out)["points_added"], 0);
  I3labResult arts = i3lab({"artifacts", "--db", central, "--json"});
  ASSERT_EQ(arts.status, 0) << arts.err;
  EXPECT_EQ(nlohmann::json::parse(arts.out)[0]["run_uid"], uid);
  I3labResult get = i3lab({"artifact", "get", "--db", central, "notes:latest", "--out", dir_ + "/fetched"});
  ASSERT_EQ(get.status, 0) << get.err;
  std::ifstream fetched(dir_ + "/fetched/notes.txt");
  std::string text;
  std::getline(fetched, text);
  EXPECT_EQ(text, "remember this");
  // "latest" protects v0; once v1 takes it, v0 can go.
  I3labResult refused = i3lab({"artifact", "delete", "--db", central, "notes:v0"});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("notes:v0 is still latest"), std::string::npos) << refused.err;
  {
    tracker::Store store(central);
    tracker::Run::create(store, {"demo"}).log_artifact("notes", "text", file("notes.txt", "remember that"));
  }
  I3labResult deleted = i3lab({"artifact", "delete", "--db", central, "notes:v0"});
  ASSERT_EQ(deleted.status, 0) << deleted.err;
  EXPECT_NE(deleted.err.find("deleted notes:v0"), std::string::npos) << deleted.err;
  EXPECT_EQ(nlohmann::json::parse(i3lab({"artifacts", "--db", central, "--json"}).out).size(), 1u);
  EXPECT_EQ(i3lab({"artifact", "delete", "--db", central, "notes:v0"}).status, 1);  // gone

  std::string garbage = file("garbage.db", std::string(5000, 'x'));
  I3labResult bad = i3lab({"runs", "--db", garbage});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find(garbage + ": not an i3lab database"), std::string::npos) << bad.err;
  I3labResult missing = i3lab({"export-history", "--db", db, "--run", "99"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("no run with id 99"), std::string::npos) << missing.err;
}

TEST_F(Cli, BenchTrackerReportsTheContractKeys) {
  I3labResult r = i3lab({"bench", "tracker", "--points", "20000", "--dir", dir_, "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"points_per_sec", "p50_log_call_ns", "query_ms_1m_points_1000_buckets"})
    EXPECT_GT(j[key].get<double>(), 0) << key;
  EXPECT_EQ(j["buckets_returned"], 1000);
  EXPECT_TRUE(fs::is_empty(dir_)) << "bench left files behind";
}

// The model benchmarks' device flags on a CPU machine: batched decoding reports each size, and
// bf16 or a GPU that is not there are usage errors that say what to add or why.
TEST_F(Cli, BenchGenerateAndTrainTakeADevice) {
  I3labResult gen = i3lab({"bench", "generate", "--preset", "i3-tiny", "--vocab-size", "100", "--tokens", "6", "--past", "0",
                           "--batch", "1,3", "--device", "cpu", "--json"});
  ASSERT_EQ(gen.status, 0) << gen.err;
  const auto g = nlohmann::json::parse(gen.out);
  EXPECT_EQ(g["device"], "cpu");
  EXPECT_GT(g["batch_1_tokens_per_sec"].get<double>(), 0);
  EXPECT_GT(g["batch_3_tokens_per_sec"].get<double>(), 0);
  EXPECT_TRUE(g["batch_3_peak_memory_bytes"].is_null());

  // --data-parallel: one rank of a real Gloo process group (its store on a kernel-picked port).
  I3labResult train = i3lab({"bench", "train", "--preset", "i3-tiny", "--vocab-size", "100", "--batch", "2", "--seq", "16",
                             "--steps", "2", "--warmup", "0", "--device", "cpu", "--data-parallel", "--json"});
  ASSERT_EQ(train.status, 0) << train.err;
  const auto t = nlohmann::json::parse(train.out);
  EXPECT_EQ(t["dtype"], "float32");
  EXPECT_GT(t["mfu"].get<double>(), 0);
  EXPECT_EQ(t["data_parallel"]["backend"], "gloo");
  EXPECT_GT(t["data_parallel"]["comm_ms_per_step"].get<double>(), 0);

  I3labResult bf16 = i3lab({"bench", "train", "--preset", "i3-tiny", "--dtype", "bfloat16"});
  EXPECT_EQ(bf16.status, 2);
  EXPECT_NE(bf16.err.find("--dtype bfloat16 is autocast on CUDA: add --device cuda"), std::string::npos) << bf16.err;
  I3labResult dtype = i3lab({"bench", "generate", "--preset", "i3-tiny", "--dtype", "float16"});
  EXPECT_EQ(dtype.status, 2);
  EXPECT_NE(dtype.err.find("--dtype must be float32 or bfloat16"), std::string::npos) << dtype.err;
  if (!fs::exists("/dev/nvidiactl")) {  // no NVIDIA driver here: no CUDA whatever the build
    I3labResult gpu = i3lab({"bench", "generate", "--preset", "i3-tiny", "--device", "cuda"});
    EXPECT_EQ(gpu.status, 2);
    EXPECT_NE(gpu.err.find("has no CUDA"), std::string::npos) << gpu.err;
  }
}

}  // namespace
