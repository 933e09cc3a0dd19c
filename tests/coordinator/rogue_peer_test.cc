// A rogue peer — raw garbage on the TCP port, garbled or oversized ZeroMQ messages, another
// protocol version, the wrong message types — is logged and dropped by both the coordinator
// and a worker, and both keep serving.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <random>
#include <zmq.hpp>

#include "tests/cluster.h"

namespace {

using nlohmann::json;

int port_of(const std::string& endpoint) { return std::stoi(endpoint.substr(endpoint.rfind(':') + 1)); }

void send_frames(zmq::socket_t& s, const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i)
    s.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
}

TEST(RoguePeer, CoordinatorDropsGarbageAndKeepsServing) {
  const std::string dir = cluster_dir(), side = dir + "/side.txt";
  Coordinator c = start_coordinator(dir);
  auto w1 = start_worker(dir, c.endpoint, "w1");

  // ZeroMQ peers with bad messages.
  zmq::context_t ctx;
  zmq::socket_t rogue(ctx, zmq::socket_type::dealer);
  rogue.set(zmq::sockopt::linger, 0);
  rogue.connect(c.endpoint);
  send_frames(rogue, {"hello"});
  send_frames(rogue, {"i3lab/2", "HEARTBEAT", "{}"});
  send_frames(rogue, {"i3lab/1", "LAUNCH", "{}"});
  send_frames(rogue, {"i3lab/1", "HELLO", "{\"worker\": 5}"});
  send_frames(rogue, {"i3lab/1", "REQUEST", std::string(100000, '[')});
  send_frames(rogue, {"i3lab/1", "EXITED", R"({"job": 1, "attempt": 1, "exit_code": 0, "signal": 0})"});  // not a worker it knows
  send_frames(rogue, {"i3lab/1", "REQUEST", R"({"op": "cancel", "args": {"id": "x"}})"});
  send_frames(rogue, {"i3lab/1", "REQUEST", R"({"op": "submit", "args": {"jobs": [{"kind": "command", "argv": 7}]}})"});
  send_frames(rogue, {"i3lab/1", "HELLO", R"({"worker": "w1", "session": "s", "hostname": 1, "resources": {}, "running": [], "exited": []})"});
  // Oversized: ZeroMQ refuses it (ZMQ_MAXMSGSIZE) and drops this connection before any allocation.
  zmq::socket_t big(ctx, zmq::socket_type::dealer);
  big.set(zmq::sockopt::linger, 0);
  big.connect(c.endpoint);
  send_frames(big, {"i3lab/1", "EVENTS", std::string(40u << 20, ' ')});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Raw bytes on the TCP port: not even a ZeroMQ greeting.
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_of(c.endpoint)));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::string junk(1 + rng() % 5000, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    if (i == 0) junk = std::string("\xff\0\0\0\0\0\0\0\x01\x7f", 10) + junk;  // a ZMTP-looking start
    ssize_t ignored = write(fd, junk.data(), junk.size());
    (void)ignored;
    close(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));

  ASSERT_TRUE(c.proc->alive()) << c.proc->stderr_text();
  const int64_t id = submit(dir, c.endpoint, {{"kind", "command"}, {"argv", {"sh", "-c", "echo ran >> '" + side + "'"}}});
  ASSERT_TRUE(eventually([&] { return jobs_by_id(jobs_json(c.endpoint))[id]["status"] == "succeeded"; }));
  EXPECT_EQ(file_lines(side), std::vector<std::string>{"ran"});
  const std::string log = c.proc->stderr_text();
  EXPECT_NE(log.find("dropped a message from peer 0x"), std::string::npos) << log;
  EXPECT_NE(log.find("protocol 'i3lab/2'"), std::string::npos) << log;
  EXPECT_NE(log.find("unknown message type 'LAUNCH'"), std::string::npos) << log;
  EXPECT_NE(log.find("\"worker\" must be a string"), std::string::npos) << log;
  EXPECT_TRUE(w1->alive());
}

// The next message on `s` within 5 s: [type, body], or ["", null].
std::pair<std::string, json> next_message(zmq::socket_t& s, const std::string& want) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(100));
    if (!(item.revents & ZMQ_POLLIN)) continue;
    std::vector<std::string> frames;
    zmq::message_t part;
    do {
      (void)s.recv(part);
      frames.push_back(part.to_string());
    } while (part.more());
    if (frames.size() >= 3 && frames[1] == want) return {frames[1], json::parse(frames[2])};
  }
  return {"", nullptr};
}

// A worker that registers properly, then sends tracker data that can never apply: every batch
// is acknowledged (a relay never wedges), files nobody asked for are refused, and nothing
// outside the artifact store can be fetched.
TEST(RoguePeer, BadTrackerDataFromAWorkerIsAcknowledgedOrRefused) {
  const std::string dir = cluster_dir();
  Coordinator c = start_coordinator(dir);
  zmq::context_t ctx;
  zmq::socket_t fake(ctx, zmq::socket_type::dealer);
  fake.set(zmq::sockopt::linger, 0);
  fake.set(zmq::sockopt::routing_id, "fake");
  fake.connect(c.endpoint);
  send_frames(fake, {"i3lab/1", "HELLO",
                     R"({"worker": "fake", "session": 1, "hostname": "h", "resources": {"cpu_slots": 0}, "running": [], "exited": []})"});
  ASSERT_EQ(next_message(fake, "WELCOME").first, "WELCOME");
  // Events of a job this coordinator never had, one of them not an event at all.
  send_frames(fake, {"i3lab/1", "EVENTS", R"({"job": 99, "attempt": 1, "events": [[1, null], [2, {"run": "u", "seq": 1, "type": "heartbeat", "wall": 1}]]})"});
  const auto ack = next_message(fake, "EVENTS_ACK");
  ASSERT_EQ(ack.first, "EVENTS_ACK");
  EXPECT_EQ(ack.second["upto"], 2);
  // A file nobody asked for.
  const std::string sha(64, 'a');
  send_frames(fake, {"i3lab/1", "UPLOAD", R"({"sha256": ")" + sha + R"(", "offset": 0, "size": 3})", "abc"});
  const auto upload = next_message(fake, "UPLOAD_ACK");
  ASSERT_EQ(upload.first, "UPLOAD_ACK");
  EXPECT_TRUE(upload.second.contains("error"));
  EXPECT_EQ(upload.second["have"], 0);
  // Files that are not there, or not names of content at all.
  send_frames(fake, {"i3lab/1", "FETCH", R"({"sha256": "../../../../etc/passwd", "offset": 0})"});
  send_frames(fake, {"i3lab/1", "FETCH", R"({"sha256": ")" + sha + R"(", "offset": 0})"});
  const auto fetched = next_message(fake, "FETCH_DATA");
  ASSERT_EQ(fetched.first, "FETCH_DATA");
  EXPECT_EQ(fetched.second["sha256"], sha);  // the path was dropped unanswered; this one is an error
  EXPECT_TRUE(fetched.second.contains("error"));
  EXPECT_NE(i3lab({"workers", "--coordinator", c.endpoint}).out.find("fake"), std::string::npos);  // still serving
  EXPECT_NE(c.proc->stderr_text().find("is not 64 lowercase hex digits"), std::string::npos) << c.proc->stderr_text();
}

TEST(RoguePeer, WorkerDropsGarbageFromItsCoordinatorAndKeepsServing) {
  const std::string dir = cluster_dir(), side = dir + "/side.txt";
  // The test plays the coordinator: a bare ROUTER.
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  auto w = start_worker(dir, endpoint, "w1");
  router.set(zmq::sockopt::rcvtimeo, 10000);

  // Receives until a message of `type` arrives; its body.
  auto expect = [&](const std::string& type) {
    while (true) {
      std::vector<zmq::message_t> parts;
      zmq::message_t m;
      if (!router.recv(m)) return json();
      parts.push_back(std::move(m));
      while (parts.back().more()) {
        zmq::message_t more;
        (void)router.recv(more);
        parts.push_back(std::move(more));
      }
      if (parts.size() >= 4 && parts[2].to_string() == type) return json::parse(parts[3].to_string());
    }
  };
  const json hello = expect("HELLO");
  ASSERT_TRUE(hello.is_object());
  const std::string id = "w1";
  const int64_t session = hello["session"];
  send_frames(router, {id, "garbage"});
  send_frames(router, {id, "i3lab/9", "WELCOME", "{}"});
  send_frames(router, {id, "i3lab/1", "ASSIGN", "{\"job\": []}"});
  send_frames(router, {id, "i3lab/1", "ASSIGN", R"({"job": 1, "attempt": 1, "session": )" + std::to_string(session) +
                                                 R"(, "spec": {"kind": "command", "argv": 3}, "env": {}, "rank": "x"})"});
  send_frames(router, {id, "i3lab/1", "HELLO", R"({"worker": "x", "session": 1, "hostname": "h", "resources": {}, "running": [], "exited": []})"});
  send_frames(router, {id, "i3lab/1", "WELCOME", R"({"worker": "w1", "session": )" + std::to_string(session) + R"(, "heartbeat_ms": 1000})"});
  // After all that, a real assignment runs.
  send_frames(router, {id, "i3lab/1", "ASSIGN", R"({"job": 7, "attempt": 1, "rank": 0, "session": )" + std::to_string(session) +
                                                 R"(, "env": {"I3LAB_JOB_ID": "7"}, "spec": {"kind": "command", "argv": ["sh", "-c", "echo $I3LAB_JOB_ID >> ')" +
                                                 side + R"('"]}})"});
  const json started = expect("STARTED");
  EXPECT_EQ(started["job"], 7);
  const json exited = expect("EXITED");
  EXPECT_EQ(exited["job"], 7);
  EXPECT_EQ(exited["exit_code"], 0);
  EXPECT_EQ(file_lines(side), std::vector<std::string>{"7"});
  EXPECT_TRUE(w->alive()) << w->stderr_text();
  const std::string log = w->stderr_text();
  EXPECT_NE(log.find("dropped a message from the coordinator"), std::string::npos) << log;
  EXPECT_NE(log.find("not one a coordinator sends"), std::string::npos) << log;
}

}  // namespace
