// The wire protocol's codec: every type round-trips, and each kind of bad message is refused
// with its Problem and a reason that says what is wrong.
#include "coordinator/protocol/protocol.h"

#include <gtest/gtest.h>

#include <set>

namespace protocol {
namespace {

// A message of each type with the fields it requires.
std::vector<Message> one_of_each() {
  using nlohmann::json;
  return {
      {Type::kHello, {{"worker", "w-1"}, {"session", 1}, {"hostname", "node1"}, {"resources", {{"cpu_slots", 2}}},
                      {"running", json::array()}, {"exited", json::array()}}},
      {Type::kWelcome, {{"worker", "w-1"}, {"session", 1}, {"heartbeat_ms", 1000}}},
      {Type::kHeartbeat, json::object()},
      {Type::kAssign, {{"job", 7}, {"attempt", 1}, {"session", 1}, {"spec", {{"kind", "command"}, {"argv", {"true"}}}}, {"env", json::object()}}},
      {Type::kStarted, {{"job", 7}, {"attempt", 1}, {"pid", 4242}}},
      {Type::kExited, {{"job", 7}, {"attempt", 1}, {"exit_code", 0}, {"signal", 0}}},
      {Type::kExitedAck, {{"job", 7}, {"attempt", 1}}},
      {Type::kCancel, {{"job", 7}, {"attempt", 1}}},
      {Type::kLog, {{"job", 7}, {"attempt", 1}, {"first", 0}, {"lines", json::array({{"stdout", 1.5, "hi"}})}}},
      {Type::kLogAck, {{"job", 7}, {"attempt", 1}, {"next", 1}}},
      {Type::kEvents, {{"job", 7}, {"attempt", 1}, {"events", json::array({json::array({1, {{"run", "abc"}, {"seq", 1}, {"type", "heartbeat"}, {"wall", 1.5}}})})}}},
      {Type::kEventsAck, {{"job", 7}, {"attempt", 1}, {"upto", 1}}},
      {Type::kUpload, {{"sha256", std::string(64, 'a')}, {"offset", 0}, {"size", 3}}},
      {Type::kUploadAck, {{"sha256", std::string(64, 'a')}, {"have", 3}}},
      {Type::kFetch, {{"sha256", std::string(64, 'a')}, {"offset", 0}}},
      {Type::kFetchData, {{"sha256", std::string(64, 'a')}, {"offset", 0}, {"size", 3}}},
      {Type::kResync, json::object()},
      {Type::kBye, json::object()},
      {Type::kRequest, {{"op", "jobs"}, {"args", json::object()}}},
      {Type::kReply, {{"result", json::array()}}},
      {Type::kError, {{"error", "no job 9"}}},
  };
}

TEST(Protocol, EveryTypeRoundTripsAndHasAUniqueName) {
  std::set<std::string> names;
  for (const Message& m : one_of_each()) {
    const std::vector<std::string> frames = encode(m);
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_EQ(frames[0], "i3lab/1");
    EXPECT_TRUE(names.insert(frames[1]).second) << frames[1];
    EXPECT_EQ(type_from_name(frames[1]), m.type);
    const Decoded d = decode(frames);
    ASSERT_TRUE(d.ok()) << frames[1] << ": " << d.reason;
    EXPECT_EQ(d.message.type, m.type);
    EXPECT_EQ(d.message.body, m.body);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(Type::kError) + 1);  // the table covers every Type
}

Problem problem_of(const std::vector<std::string>& frames, std::string* reason = nullptr) {
  const Decoded d = decode(frames);
  if (reason) *reason = d.reason;
  return d.problem;
}

TEST(Protocol, BadMessagesAreRefusedWithTheirProblem) {
  std::string reason;
  EXPECT_EQ(problem_of({}), Problem::kFraming);
  EXPECT_EQ(problem_of({"i3lab/1", "HEARTBEAT"}), Problem::kFraming);
  EXPECT_EQ(problem_of({"i3lab/1", "HEARTBEAT", "{}", "blob"}, &reason), Problem::kFraming);
  EXPECT_NE(reason.find("HEARTBEAT: 1 blob frames, at most 0"), std::string::npos) << reason;
  EXPECT_EQ(problem_of(std::vector<std::string>(9, "x")), Problem::kFraming);

  EXPECT_EQ(problem_of({"i3lab/2", "HEARTBEAT", "{}"}, &reason), Problem::kVersion);
  EXPECT_EQ(reason, "protocol 'i3lab/2', this side speaks 'i3lab/1'");
  EXPECT_EQ(problem_of({std::string("\x00\xff", 2), "HEARTBEAT", "{}"}, &reason), Problem::kVersion);
  EXPECT_EQ(reason, "protocol '\\x00\\xff', this side speaks 'i3lab/1'");  // bytes printed, not passed on

  EXPECT_EQ(problem_of({"i3lab/1", "LAUNCH_MISSILES", "{}"}, &reason), Problem::kUnknownType);
  EXPECT_EQ(reason, "unknown message type 'LAUNCH_MISSILES'");
  EXPECT_EQ(problem_of({"i3lab/1", std::string(1 << 20, 'A'), "{}"}, &reason), Problem::kUnknownType);
  EXPECT_LT(reason.size(), 80u);

  EXPECT_EQ(problem_of({"i3lab/1", "EVENTS", std::string(kMaxBodyBytes + 1, ' ')}, &reason), Problem::kOversized);
  EXPECT_NE(reason.find("over the limit of 8388608"), std::string::npos) << reason;

  EXPECT_EQ(problem_of({"i3lab/1", "HEARTBEAT", "{"}, &reason), Problem::kMalformed);
  EXPECT_NE(reason.find("HEARTBEAT body: not valid JSON"), std::string::npos) << reason;
  EXPECT_EQ(problem_of({"i3lab/1", "HEARTBEAT", std::string(100000, '[') + std::string(100000, ']')}, &reason),
            Problem::kMalformed);
  EXPECT_NE(reason.find("nested deeper than 128"), std::string::npos) << reason;
  EXPECT_EQ(problem_of({"i3lab/1", "HEARTBEAT", "[]"}, &reason), Problem::kMalformed);
  EXPECT_EQ(reason, "HEARTBEAT: the body is not a JSON object");
  EXPECT_EQ(problem_of({"i3lab/1", "CANCEL", R"({"job": 3})"}, &reason), Problem::kMalformed);
  EXPECT_EQ(reason, "CANCEL: no field \"attempt\"");
  EXPECT_EQ(problem_of({"i3lab/1", "CANCEL", R"({"job": "3", "attempt": 1})"}, &reason), Problem::kMalformed);
  EXPECT_EQ(reason, "CANCEL: \"job\" must be an integer, got \"3\"");
  // Fields a newer peer adds are kept, not refused.
  const Decoded extra = decode({"i3lab/1", "CANCEL", R"({"job": 3, "attempt": 1, "grace_ms": 500})"});
  ASSERT_TRUE(extra.ok()) << extra.reason;
  EXPECT_EQ(extra.message.body["grace_ms"], 500);
}

}  // namespace
}  // namespace protocol
