// common/util: bounded file and JSON reads, SHA-256.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "common/util/files.h"
#include "common/util/json.h"
#include "common/util/sha256.h"
#include "tests/test_paths.h"

namespace {

using util::Sha256;
using util::sha256_hex;

TEST(Sha256, StandardVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 million;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) million.update(chunk);
  EXPECT_EQ(million.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

std::string read_error(const std::string& path, uint64_t limit = util::kMaxDocumentBytes) {
  try {
    util::read_file(path, limit);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(read)";
}

// What is not a regular file is refused before a byte is read: a FIFO would block forever and
// /dev/zero never ends.
TEST(Files, OnlyRegularFilesWithinTheLimitAreRead) {
  const std::string fifo = test_path("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(read_error(fifo), fifo + ": is not a regular file (a device, FIFO or socket); give a file");
  EXPECT_EQ(read_error("/dev/zero"), "/dev/zero: is not a regular file (a device, FIFO or socket); give a file");
  EXPECT_EQ(read_error(::testing::TempDir()).find("is a directory"), ::testing::TempDir().size() + 2);
  EXPECT_NE(read_error(test_path("missing")).find("cannot open (No such file or directory)"), std::string::npos);
  const std::string file = test_path("f.txt");
  write_file(file, std::string(100, 'x'));
  EXPECT_EQ(util::read_file(file), std::string(100, 'x'));
  EXPECT_EQ(read_error(file, 99), file + ": is 100 bytes; the limit for this kind of file is 99");
  EXPECT_EQ(util::regular_file_size(file), 100u);
}

std::string json_error(const std::string& text) {
  try {
    util::parse_json(text, "doc.json");
  } catch (const util::JsonError& e) {
    return e.what();
  }
  return "(parsed)";
}

// Deep nesting is refused before parsing: printing or freeing such a value would recurse
// 100,000 frames deep.
TEST(Json, NestingIsBoundedAndErrorsSayWhere) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(json_error(deep), "doc.json: JSON nested deeper than 128 levels (at byte 128); i3lab reads no deeper");
  EXPECT_EQ(json_error("{\"a\": " + std::string(200, '{') + "}"), "doc.json: JSON nested deeper than 128 levels (at byte 133); i3lab reads no deeper");
  const std::string ok = std::string(128, '[') + std::string(128, ']');
  EXPECT_EQ(json_error(ok), "(parsed)");
  EXPECT_EQ(json_error("[\"" + std::string(500, '[') + "\"]"), "(parsed)");  // brackets in a string do not nest
  EXPECT_EQ(json_error("[\"\\\"" + std::string(500, '[') + "\"]"), "(parsed)");  // nor after an escaped quote
  EXPECT_EQ(json_error("{\"a\": 1,\n}").rfind("doc.json: not valid JSON (parse error at line 2, column 1:", 0), 0u);
  EXPECT_FALSE(util::try_parse_json(deep));
  EXPECT_FALSE(util::try_parse_json("{"));
  EXPECT_EQ(*util::try_parse_json("[1]"), nlohmann::json::array({1}));
}

}  // namespace
