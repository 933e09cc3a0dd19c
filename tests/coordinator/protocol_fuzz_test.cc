// The message decoder against garbage: the corpus under tests/data/fuzz/protocol/ (each file
// a JSON array of frames) and seeded mutations of valid messages. decode() must never throw
// or crash, must explain every refusal, and what it accepts must encode and decode again to
// the same message.
#include <gtest/gtest.h>

#include <random>

#include "common/util/json.h"
#include "coordinator/protocol/protocol.h"
#include "tests/fuzz.h"

namespace protocol {
namespace {

void check(const std::vector<std::string>& frames) {
  Decoded d;
  ASSERT_NO_THROW(d = decode(frames));
  if (!d.ok()) {
    ASSERT_FALSE(d.reason.empty()) << problem_name(d.problem);
    ASSERT_LT(d.reason.size(), 400u) << d.reason.substr(0, 400);
    return;
  }
  const Decoded again = decode(encode(d.message));
  ASSERT_TRUE(again.ok()) << again.reason;
  ASSERT_EQ(again.message.type, d.message.type);
  ASSERT_EQ(again.message.body, d.message.body);
  ASSERT_EQ(again.message.blobs, d.message.blobs);
}

TEST(ProtocolFuzz, CorpusMessagesAreDecodedOrRefusedCleanly) {
  for (const auto& [name, text] : fuzz::corpus("protocol")) {
    SCOPED_TRACE(name);
    const nlohmann::json frames = util::parse_json(text, name);
    check(frames.get<std::vector<std::string>>());
  }
}

TEST(ProtocolFuzz, MutatedMessagesAreDecodedOrRefusedCleanly) {
  const std::vector<std::vector<std::string>> seeds = {
      {"i3lab/1", "HELLO", R"({"worker":"w","session":1,"hostname":"h","resources":{"cpu_slots":2,"gpus":[]},"running":[{"job":1,"attempt":1}],"exited":[]})"},
      {"i3lab/1", "ASSIGN", R"({"job":1,"attempt":2,"session":1,"spec":{"kind":"command","argv":["sleep","5"]},"env":{}})"},
      {"i3lab/1", "EVENTS", R"({"run":"u","events":[{"run":"u","seq":1,"type":"metrics","step":1,"wall":1,"values":{"loss":1.5}}]})"},
      {"i3lab/1", "EXITED", R"({"job":1,"attempt":2,"exit_code":-1,"signal":9})"},
      {"i3lab/1", "REQUEST", R"({"op":"submit","args":{"config":{"kind":"command","argv":["true"]}}})"},
      {"i3lab/1", "HEARTBEAT", "{}"},
      {"i3lab/1", "LOG", R"({"job":1,"attempt":2,"first":0,"lines":[["stdout",1.5,"hello"]]})"},
  };
  const std::vector<std::string> dictionary = {"[", "]", "{", "}", "\"", ",", ":", "1e400", "-1", "9223372036854775808",
                                               "null", "\"job\":", "\"attempt\":", "\"\\ud800\"", "\xff"};
  const std::vector<std::string> frame0 = {"i3lab/1", "i3lab/2", "", std::string("\0", 1), "i3lab/1\n"};
  std::mt19937_64 rng(20261130);
  for (int i = 0; i < 20000; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    std::vector<std::string> frames = seeds[i % seeds.size()];
    switch (rng() % 6) {
      case 0: frames[0] = frame0[rng() % frame0.size()]; break;
      case 1: frames[1] = fuzz::mutate(frames[1], rng); break;
      case 2: frames.resize(rng() % 10, "x"); break;
      case 3: frames.push_back(fuzz::mutate(frames[2], rng)); break;
      default: frames[2] = fuzz::mutate_n(frames[2], rng, dictionary, 1 + static_cast<int>(rng() % 4));
    }
    check(frames);
  }
}

}  // namespace
}  // namespace protocol
