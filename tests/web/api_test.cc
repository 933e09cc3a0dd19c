// The HTTP API over real HTTP: `i3lab coordinator --http` and `i3lab ui` on ephemeral ports,
// cpp-httplib's client, and the database file read back with tracker::Query.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "common/util/sha256.h"
#include "tests/web/web_server.h"
#include "tracker/query/query.h"

using nlohmann::json;

namespace {

json run_with_points(const std::string& uid, const std::string& name, int steps) {
  json list = json::array({events::created(uid, name, {{"optim", {{"lr", 0.001}}}})});
  for (int s = 1; s <= steps; ++s) list.push_back(events::metrics(uid, s + 1, s, {{"loss", 10.0 / s}}));
  return list;
}

TEST(WebApi, EventsWrittenOverHttpAreCommittedAndReadBack) {
  const std::string dir = cluster_dir();
  WebServer w = start_web_coordinator(dir);
  const std::string uid = "0123456789abcdef0123456789abcdef";
  json list = run_with_points(uid, "first", 500);
  list.push_back({{"run", uid}, {"seq", 600}, {"type", "table"}, {"name", "samples"}, {"step", 100},
                  {"columns", {"prompt", "output"}}, {"rows", json::array({json::array({"hello", "world"})})}});
  list.push_back({{"run", uid}, {"seq", 601}, {"type", "histogram"}, {"key", "parameters/w"}, {"step", 100},
                  {"lo", -1.0}, {"hi", 1.0}, {"counts", {1, 2, 3, 4}}});
  list.push_back({{"run", uid}, {"seq", 602}, {"type", "console"}, {"stream", "stdout"}, {"line", "step 1"}, {"wall", 1001.0}});
  int status = 0;
  json answer = post_events(w, list, &status);
  ASSERT_EQ(status, 200) << answer.dump();
  EXPECT_EQ(answer["applied"], list.size());
  EXPECT_TRUE(answer["errors"].empty()) << answer.dump();
  const int64_t id = answer["runs"][uid].get<int64_t>();

  // The answer came after the commit: the database file holds it now.
  tracker::Query q(dir + "/i3lab.db");
  EXPECT_EQ(q.points(id, "loss", 0, 1000).size(), 500u);
  EXPECT_EQ(q.run(id).name, "first");

  json runs = get_json(w, "/api/v1/runs?view=flat", &status);
  ASSERT_EQ(status, 200);
  ASSERT_EQ(runs["total"], 1);
  EXPECT_EQ(runs["runs"][0]["values"]["config.optim.lr"], 0.001);
  EXPECT_DOUBLE_EQ(runs["runs"][0]["values"]["summary.loss"].get<double>(), 10.0 / 500);

  json series = get_json(w, "/api/v1/runs/" + std::to_string(id) + "/series?key=loss&buckets=50", &status);
  ASSERT_EQ(status, 200) << series.dump();
  const json& buckets = series["series"]["loss"];
  ASSERT_GE(buckets.size(), 40u);
  ASSERT_LE(buckets.size(), 50u);
  int64_t count = 0;
  for (const json& b : buckets) count += b[6].get<int64_t>();
  EXPECT_EQ(count, 500);                          // every point in some bucket
  EXPECT_DOUBLE_EQ(buckets[0][3].get<double>(), 10.0);  // max of the first bucket: step 1

  json zoomed = get_json(w, "/api/v1/runs/" + std::to_string(id) + "/series?key=loss&from=10&to=19&buckets=100");
  ASSERT_EQ(zoomed["series"]["loss"].size(), 10u);  // zoomed in: raw points
  EXPECT_EQ(zoomed["series"]["loss"][0][0], 10);

  json table = get_json(w, "/api/v1/runs/" + std::to_string(id) + "/table?name=samples&step=100", &status);
  ASSERT_EQ(status, 200) << table.dump();
  EXPECT_EQ(table["rows"][0][1], "world");
  json hist = get_json(w, "/api/v1/runs/" + std::to_string(id) + "/histograms?key=parameters/w");
  ASSERT_EQ(hist["histograms"].size(), 1u);
  EXPECT_EQ(hist["histograms"][0]["counts"], json({1, 2, 3, 4}));
  json console = get_json(w, "/api/v1/runs/" + std::to_string(id) + "/console");
  ASSERT_EQ(console.size(), 1u);
  EXPECT_EQ(console[0]["line"], "step 1");
  json one = get_json(w, "/api/v1/runs/" + std::to_string(id));
  EXPECT_EQ(one["keys"], json({"loss"}));
  EXPECT_EQ(one["tables"], json({"samples"}));

  auto c = w.client();
  auto csv = c.Get(("/api/v1/runs/" + std::to_string(id) + "/history.csv").c_str());
  ASSERT_TRUE(csv);
  EXPECT_EQ(csv->get_header_value("Content-Type"), "text/csv; charset=utf-8");
  EXPECT_EQ(csv->body.rfind("step,wall,loss\n1,1001,10\n", 0), 0u) << csv->body.substr(0, 60);

  // Was: a client accepting Brotli, as every browser does, got each answer compressed at
  // quality 11 (10 s for the list of 10,000 runs). Answers go as they are.
  httplib::Client raw(w.host, w.port);
  raw.set_decompress(false);
  for (const char* path : {"/api/v1/runs?view=flat", "/app.js", "/"}) {
    auto r = raw.Get(path, {{"Accept-Encoding", "br, gzip, deflate"}});
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_FALSE(r->has_header("Content-Encoding")) << path;
    EXPECT_EQ(r->get_header_value("Content-Length"), std::to_string(r->body.size())) << path;
  }
  EXPECT_EQ(json::parse(raw.Get("/api/v1/runs?view=flat", {{"Accept-Encoding", "br"}})->body)["runs"].size(), 1u);
}

TEST(WebApi, ABatchSentTwiceIsAppliedOnce) {
  const std::string dir = cluster_dir();
  WebServer w = start_web_coordinator(dir);
  const std::string uid = "11111111111111111111111111111111";
  const json list = run_with_points(uid, "twice", 100);
  json first = post_events(w, list), second = post_events(w, list);
  EXPECT_EQ(first["applied"], 101);
  EXPECT_EQ(second["applied"], 0);
  EXPECT_EQ(second["duplicates"], 101);
  tracker::Query q(dir + "/i3lab.db");
  EXPECT_EQ(q.points(first["runs"][uid].get<int64_t>(), "loss", 0, 1000).size(), 100u);
}

TEST(WebApi, BadRequestsGetAClearErrorAndChangeNothing) {
  const std::string dir = cluster_dir();
  WebServer w = start_web_coordinator(dir);
  auto c = w.client();
  auto expect_error = [&](const httplib::Result& res, int status, const std::string& says) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    const json body = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << res->body;
    EXPECT_NE(body.value("error", "").find(says), std::string::npos) << body.dump();
  };
  expect_error(c.Post("/api/v1/events", "{not json", "application/json"), 400, "request body: not valid JSON");
  expect_error(c.Post("/api/v1/events", "{\"events\": 3}", "application/json"), 400, "\"events\" must be an array");
  expect_error(c.Post("/api/v1/events", "{\"events\": []}", "text/plain"), 415, "application/json");
  expect_error(c.Post("/api/v1/events", std::string(100000, '['), "application/json"), 400, "nested deeper");
  // One malformed event refuses the whole batch, naming it and its field.
  json list = run_with_points("22222222222222222222222222222222", "ok", 3);
  list.push_back({{"run", "22222222222222222222222222222222"}, {"seq", 9}, {"type", "metrics"}, {"step", "ten"},
                  {"wall", 1.0}, {"values", json::object()}});
  expect_error(c.Post("/api/v1/events", json{{"events", list}}.dump(), "application/json"), 400, "events[4]");
  expect_error(c.Post("/api/v1/events", std::string(9u << 20, ' '), "application/json"), 413, "larger than");
  // A chunked body could be any size: refused before it is read (sent whole here, so the
  // answer cannot race the client's writing).
  expect_error(c.Post("/api/v1/events", {{"Transfer-Encoding", "chunked"}}, "e\r\n{\"events\": []}\r\n0\r\n\r\n",
                      "application/json"),
               411, "Content-Length");
  expect_error(c.Post("/api/v1/events", {{"Content-Encoding", "gzip"}}, "{\"events\": []}", "application/json"), 415,
               "uncompressed");
  expect_error(c.Get("/api/v1/runs?where=config.lr=>3"), 400, "runs filter");
  expect_error(c.Get("/api/v1/runs?limit=-4"), 400, "\"limit\"");
  expect_error(c.Get("/api/v1/runs/1/series?key=loss&buckets=abc"), 400, "\"buckets\"");
  expect_error(c.Get("/api/v1/runs/77"), 404, "no run with id 77");
  expect_error(c.Get("/api/v1/nothing"), 404, "no such API path");
  expect_error(c.Delete("/api/v1/runs/1"), 405, "DELETE");
  expect_error(c.Get(("/api/v1/" + std::string(3000, 'a')).c_str()), 414, "longer than");
  // A foreign Host (DNS rebinding) is refused on a loopback server.
  expect_error(c.Get("/api/v1/info", {{"Host", "evil.example:80"}}), 421, "evil.example");
  // Nothing was stored.
  EXPECT_EQ(get_json(w, "/api/v1/runs")["total"], 0);
  EXPECT_TRUE(w.proc->alive());
}

TEST(WebApi, FilesAreOnlyTheStoredVersionsAndDownloadWithRanges) {
  const std::string dir = cluster_dir();
  WebServer w = start_web_coordinator(dir);
  auto c = w.client();
  std::string bytes;
  for (int i = 0; i < 3000; ++i) bytes += "line " + std::to_string(i) + "\n";
  const std::string sha = util::sha256_hex(bytes);
  const std::string size = std::to_string(bytes.size());
  // Chunked upload, out of order first, then right; a wrong hash is refused.
  auto chunk = [&](size_t at, size_t n) {
    return c.Put(("/api/v1/files/" + sha + "?size=" + size + "&offset=" + std::to_string(at)).c_str(), bytes.substr(at, n),
                 "application/octet-stream");
  };
  auto res = chunk(100, 100);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 409);
  res = chunk(0, 10000);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["done"], false);
  res = chunk(10000, bytes.size());
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["done"], true);
  const std::string wrong(64, 'a');
  res = c.Put(("/api/v1/files/" + wrong + "?size=5").c_str(), "hello", "application/octet-stream");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400) << res->body;
  res = c.Put("/api/v1/files/..%2F..%2Fetc?size=5", "hello", "application/octet-stream");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404) << res->body;

  const std::string uid = "33333333333333333333333333333333";
  json list = json::array({events::created(uid, "art")});
  list.push_back({{"run", uid}, {"seq", 2}, {"type", "artifact_logged"}, {"name", "notes"}, {"artifact_type", "text"},
                  {"metadata", json::object()}, {"aliases", {"latest"}},
                  {"files", {{{"path", "dir/notes.txt"}, {"sha256", sha}, {"size", bytes.size()}}}}, {"wall", 2.0}});
  int status = 0;
  json answer = post_events(w, list, &status);
  ASSERT_EQ(status, 200);
  ASSERT_TRUE(answer["errors"].empty()) << answer.dump();

  auto whole = c.Get("/api/v1/artifact/file?ref=notes:v0&path=dir/notes.txt");
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200);
  EXPECT_EQ(whole->body, bytes);
  EXPECT_EQ(whole->get_header_value("Content-Disposition"), "attachment; filename=\"notes.txt\"");
  auto part = c.Get("/api/v1/artifact/file?ref=notes:latest&path=dir/notes.txt", {{"Range", "bytes=5-14"}});
  ASSERT_TRUE(part);
  EXPECT_EQ(part->status, 206);
  EXPECT_EQ(part->body, bytes.substr(5, 10));
  auto tail = c.Get("/api/v1/artifact/file?ref=notes:latest&path=dir/notes.txt", {{"Range", "bytes=-4"}});
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->status, 206);
  EXPECT_EQ(tail->body, bytes.substr(bytes.size() - 4));
  // Was: a range past the end made the server send memory beyond the body. Ranges outside a
  // file are refused (416, its error whole), and every other answer ignores Range.
  const std::string file_size = std::to_string(bytes.size());
  for (const std::string& range : std::vector<std::string>{"bytes=0-" + file_size, "bytes=" + file_size + "-", "bytes=5-4",
                                                           "bytes=0-99999999"}) {
    auto r = c.Get("/api/v1/artifact/file?ref=notes:latest&path=dir/notes.txt", {{"Range", range}});
    ASSERT_TRUE(r) << range;
    EXPECT_EQ(r->status, 416) << range;
    if (range != "bytes=5-4") {  // malformed: cpp-httplib's own 416, before the handler
      EXPECT_EQ(r->get_header_value("Content-Range"), "bytes */" + file_size) << range;
    }
  }
  for (const char* path : {"/api/v1/info", "/app.js", "/api/v1/runs", "/api/v1/runs/999"}) {
    auto plain = c.Get(path);
    auto r = c.Get(path, {{"Range", "bytes=0-1000000"}});
    ASSERT_TRUE(plain && r) << path;
    EXPECT_EQ(r->status, plain->status) << path;
    EXPECT_EQ(r->body, plain->body) << path;
    EXPECT_FALSE(r->has_header("Content-Range")) << path;
  }
  auto missing = c.Get("/api/v1/artifact/file?ref=notes:latest&path=nope", {{"Range", "bytes=0-1000000"}});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->body.find("has no file"), std::string::npos) << missing->body;
  // Paths are looked up in the version's manifest, never on disk.
  for (const char* path : {"..%2Fi3lab.db", "%2Fetc%2Fpasswd", "dir%2F..%2F..%2Fi3lab.db", "notes.txt"}) {
    auto r = c.Get((std::string("/api/v1/artifact/file?ref=notes:v0&path=") + path).c_str());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << path;
  }
  auto r = c.Get("/../../../../etc/passwd");
  ASSERT_TRUE(r);
  EXPECT_NE(r->status, 200);
  EXPECT_EQ(r->body.find("root:"), std::string::npos);
  json versions = get_json(w, "/api/v1/artifacts?name=notes");
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0]["run_uid"], uid);
}

TEST(WebApi, AServerBeyondLoopbackTakesWritesOnlyWithItsToken) {
  const std::string dir = cluster_dir();
  {
    WebServer open = start_web_coordinator(dir, "0.0.0.0:0");
    int status = 0;
    json answer = post_events(open, run_with_points("44444444444444444444444444444444", "x", 1), &status);
    EXPECT_EQ(status, 403);
    EXPECT_NE(answer["error"].get<std::string>().find("--http-token"), std::string::npos);
    get_json(open, "/api/v1/runs", &status);
    EXPECT_EQ(status, 200);
    open.proc->signal(SIGTERM);
    EXPECT_EQ(open.proc->wait(), 0);
  }
  std::ofstream(dir + "/token") << "s3cret-token-of-some-length\n";
  WebServer w = start_web_coordinator(dir, "0.0.0.0:0", {"--http-token", dir + "/token"});
  const json list = run_with_points("55555555555555555555555555555555", "y", 1);
  int status = 0;
  post_events(w, list, &status);
  EXPECT_EQ(status, 401);
  post_events(w, list, &status, {{"Authorization", "Bearer wrong-token-of-some-length"}});
  EXPECT_EQ(status, 401);
  json answer = post_events(w, list, &status, {{"Authorization", "Bearer s3cret-token-of-some-length"}});
  EXPECT_EQ(status, 200) << answer.dump();
  EXPECT_EQ(answer["applied"], 2);
}

TEST(WebApi, JobsAreSubmittedAndCancelledOverHttp) {
  const std::string dir = cluster_dir();
  WebServer w = start_web_coordinator(dir);
  auto c = w.client();
  const json spec = {{"kind", "command"}, {"argv", {"sleep", "30"}}};
  auto res = c.Post("/api/v1/jobs", json{{"jobs", {spec, spec}}}.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json ids = json::parse(res->body)["ids"];
  ASSERT_EQ(ids.size(), 2u);
  res = c.Post(("/api/v1/jobs/" + std::to_string(ids[0].get<int64_t>()) + "/cancel").c_str(), "{}", "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["status"], "cancelled");
  const auto by_id = jobs_by_id(get_json(w, "/api/v1/jobs"));
  EXPECT_EQ(by_id.at(ids[0].get<int64_t>())["status"], "cancelled");
  EXPECT_EQ(by_id.at(ids[1].get<int64_t>())["status"], "queued");
  // What the coordinator refuses comes back as 400 with its reason.
  res = c.Post("/api/v1/jobs", json{{"jobs", {{{"kind", "nope"}}}}}.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("kind"), std::string::npos) << res->body;
}

TEST(WebApi, ALiveStreamAnnouncesAPointWithinASecond) {
  const std::string dir = cluster_dir();
  WebServer w = start_web_coordinator(dir);
  const std::string uid = "66666666666666666666666666666666";
  const int64_t id = post_events(w, run_with_points(uid, "live", 5))["runs"][uid].get<int64_t>();
  std::mutex mu;
  std::string received;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    auto c = w.client();
    c.Get(("/api/v1/runs/" + std::to_string(id) + "/stream").c_str(), [&](const char* data, size_t n) {
      std::lock_guard<std::mutex> lock(mu);
      received.append(data, n);
      return !done.load();
    });
  });
  auto events_seen = [&] {
    std::lock_guard<std::mutex> lock(mu);
    size_t n = 0;
    for (size_t at = received.find("event: run"); at != std::string::npos; at = received.find("event: run", at + 1)) ++n;
    return n;
  };
  ASSERT_TRUE(eventually([&] { return events_seen() >= 1; }, std::chrono::seconds(5)));  // the current version
  const auto sent = std::chrono::steady_clock::now();
  post_events(w, json::array({events::metrics(uid, 7, 6, {{"loss", 1.0}})}));
  ASSERT_TRUE(eventually([&] { return events_seen() >= 2; }, std::chrono::seconds(5)));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count();
  std::cout << "a new point reached the stream after " << ms << " ms" << std::endl;
  done = true;
  post_events(w, json::array({events::metrics(uid, 8, 7, {{"loss", 1.0}})}));  // wakes the reader to stop
  reader.join();
}

TEST(WebApi, UiServesADatabaseReadOnly) {
  const std::string dir = cluster_dir();
  {
    WebServer w = start_web_coordinator(dir);
    post_events(w, run_with_points("77777777777777777777777777777777", "<img src=x onerror=alert(1)>", 10));
    w.proc->signal(SIGTERM);
    ASSERT_EQ(w.proc->wait(), 0);
  }
  WebServer ui = start_ui(dir + "/i3lab.db");
  int status = 0;
  json runs = get_json(ui, "/api/v1/runs", &status);
  ASSERT_EQ(status, 200);
  // The name comes back as JSON text, exactly as stored; the page writes it as text.
  EXPECT_EQ(runs["runs"][0]["name"], "<img src=x onerror=alert(1)>");
  post_events(ui, run_with_points("88888888888888888888888888888888", "no", 1), &status);
  EXPECT_EQ(status, 405);
  EXPECT_FALSE(get_json(ui, "/api/v1/info")["writes"].get<bool>());
  auto c = ui.client();
  auto page = c.Get("/runs/1");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("script-src 'self'"), std::string::npos);
  auto js = c.Get("/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js->body.find("innerHTML"), std::string::npos);  // user text never goes in as HTML
}

TEST(WebApi, ASecondServerOnAPortInUseIsRefused) {
  // Was: cpp-httplib's SO_REUSEPORT let the second server bind too and take half the requests.
  const std::string dir = cluster_dir();
  WebServer first = start_web_coordinator(dir);
  const std::string http = "127.0.0.1:" + std::to_string(first.port);
  const I3labResult second = i3lab({"ui", "--db", dir + "/i3lab.db", "--http", http});
  EXPECT_NE(second.status, 0);
  EXPECT_NE(second.err.find("cannot listen for HTTP on " + http), std::string::npos) << second.err;
  int status = 0;
  get_json(first, "/api/v1/info", &status);
  EXPECT_EQ(status, 200);
}

}  // namespace
