// Tests of the chunk tokenizer against the spec's vectors and Python's behaviour.
#include "model/text/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "model/text/unicode.h"
#include "tests/test_paths.h"

namespace i3 {
namespace {

std::string join_segments(const std::string& text) {
  std::u32string cps;
  decode_utf8(text, &cps);
  std::string out;
  for (const auto& chunk : segment(lowercase(cps))) out += (out.empty() ? "" : "|") + to_utf8(chunk);
  return out;
}

std::string lower(const std::string& text) {
  std::u32string cps;
  decode_utf8(text, &cps);
  return to_utf8(lowercase(cps));
}

TEST(Segment, SpecVectors) {
  EXPECT_EQ(join_segments("Once upon a time, there was a little girl."),
            "on|ce| u|pon| a| t|im|e,| t|her|e |was| a| l|it|tle| g|ir|l.");
  EXPECT_EQ(join_segments("Hello world"), "he|llo| w|or|ld");
  EXPECT_EQ(join_segments("user: tell me"), "us|er:| t|ell| m|e");
  EXPECT_EQ(join_segments("The cat"), "the| c|at");
  EXPECT_EQ(join_segments("a"), "a");
  EXPECT_EQ(join_segments(""), "");
}

TEST(Segment, OnlyAsciiSpaceCounts) {
  // A space after three characters makes a trigram; a no-break space (U+00A0) does not.
  EXPECT_EQ(join_segments("abc d"), "abc| d");
  EXPECT_EQ(join_segments("abc\u00a0d"), "ab|c\u00a0|d");
}

TEST(Encode, SpecExample) {
  VocabBuilder builder;
  builder.add_text("once upon a time");
  builder.add_text("hello there");
  ChunkTokenizer tok = builder.build();
  std::vector<std::string> expected = {"<UNK>", " t", "e", " a", " u", "ce", "he", "her", "im", "llo", "on", "pon"};
  ASSERT_EQ(tok.vocab_size(), static_cast<int64_t>(expected.size()));
  for (size_t id = 0; id < expected.size(); ++id) EXPECT_EQ(tok.chunk(id), expected[id]) << id;
  EXPECT_EQ(tok.encode(std::string_view("Hello time!")), (std::vector<int32_t>{6, 9, 1, 8, 2, 0}));
  EXPECT_EQ(tok.decode(std::vector<int32_t>{6, 9, 1, 8, 2, 0}), "hello time<UNK>");
  EXPECT_EQ(tok.decode(std::vector<int64_t>{999, -1, 3}), "<UNK><UNK> a");
}

// Expected values are Python 3.11's str.lower() of the same strings.
TEST(Lowercase, MatchesPythonStrLower) {
  EXPECT_EQ(lower("\u00c0\u00c9\u00ce\u00d5\u00dc \u00c7a"), "\u00e0\u00e9\u00ee\u00f5\u00fc \u00e7a");
  EXPECT_EQ(lower("STRASSE Stra\u00dfe \u1e9e"), "strasse stra\u00dfe \u00df");
  // Greek: capital sigma at a word end becomes final sigma, elsewhere medial.
  EXPECT_EQ(lower("\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u039f\u03a3. \u03a3"),
            "\u03bf\u03b4\u03bf\u03c2 \u03c3\u03bf\u03c6\u03bf\u03c2. \u03c3");
  // Turkish dotted capital I becomes i + combining dot above (two code points); dotless ı stays.
  EXPECT_EQ(lower("\u0130stanbul D\u0130YARBAKIR"), "i\u0307stanbul di\u0307yarbakir");
  EXPECT_EQ(lower("I \u0131 \u0130"), "i \u0131 i\u0307");
  EXPECT_EQ(lower("\U0001F600 Emoji \U0001F44D\U0001F3FD \u00c5NGSTR\u00d6M"),
            "\U0001F600 emoji \U0001F44D\U0001F3FD \u00e5ngstr\u00f6m");
  EXPECT_EQ(lower("\u01c5 \u01c8 \u01cb \u03a9 \u212a \u212b"), "\u01c6 \u01c9 \u01cc \u03c9 k \u00e5");
}

TEST(Segment, IndexesByCodePointsAfterLowercasing) {
  // İ lower-cases to two code points (i + U+0307), which form the first chunk of "İst".
  EXPECT_EQ(join_segments("\u0130st"), "i\u0307|st");
  EXPECT_EQ(join_segments("\U0001F600\U0001F600\U0001F600\U0001F600"), "\U0001F600\U0001F600|\U0001F600\U0001F600");
}

// The JSON that Python's json.dump writes for the published tokenizer's save() of a
// vocabulary built from kTexts (non-ASCII, quotes, backslash, controls, an emoji).
const char* kTexts[] = {"Caf\u00e9 au lait, \"quoted\" back\\slash", "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u039f\u0394\u039f\u03a3",
                        "tab\there\nnew line \U0001F600 emoji", "\u0130stanbul\x7f\x01 end"};
const char* kPythonJson = R"JSON({"chunk_to_idx": {"<UNK>": 0, " e": 1, " l": 2, " \"": 3, " au": 4, " b": 5, " \u03bf": 6, " \ud83d\ude00": 7, "ac": 8, "ai": 9, "an": 10, "as": 11, "b\t": 12, "bu": 13, "ca": 14, "e\n": 15, "ed\"": 16, "f\u00e9": 17, "h": 18, "her": 19, "ine": 20, "i\u0307": 21, "ji": 22, "k\\": 23, "l\u007f\u0001": 24, "mo": 25, "nd": 26, "new": 27, "ot": 28, "qu": 29, "sl": 30, "st": 31, "t,": 32, "ta": 33, "\u03b4\u03bf": 34, "\u03b5\u03bb": 35, "\u03ba\u03ac": 36, "\u03bb\u03b7": 37, "\u03bd\u03b9": 38, "\u03c2": 39}, "idx_to_chunk": {"0": "<UNK>", "1": " e", "2": " l", "3": " \"", "4": " au", "5": " b", "6": " \u03bf", "7": " \ud83d\ude00", "8": "ac", "9": "ai", "10": "an", "11": "as", "12": "b\t", "13": "bu", "14": "ca", "15": "e\n", "16": "ed\"", "17": "f\u00e9", "18": "h", "19": "her", "20": "ine", "21": "i\u0307", "22": "ji", "23": "k\\", "24": "l\u007f\u0001", "25": "mo", "26": "nd", "27": "new", "28": "ot", "29": "qu", "30": "sl", "31": "st", "32": "t,", "33": "ta", "34": "\u03b4\u03bf", "35": "\u03b5\u03bb", "36": "\u03ba\u03ac", "37": "\u03bb\u03b7", "38": "\u03bd\u03b9", "39": "\u03c2"}, "vocab_size": 40, "unk_token": "<UNK>", "unk_idx": 0})JSON";

TEST(VocabFile, ByteIdenticalToPythonJsonDump) {
  VocabBuilder builder;
  for (const char* t : kTexts) builder.add_text(t);
  EXPECT_EQ(builder.build().to_json(), kPythonJson);
}

TEST(VocabFile, RoundTrip) {
  ChunkTokenizer tok = ChunkTokenizer::from_json(kPythonJson, "python.json");
  EXPECT_EQ(tok.vocab_size(), 40);
  EXPECT_EQ(tok.to_json(), kPythonJson);
  std::string path = test_path("vocab.json");
  tok.save(path);
  ChunkTokenizer again = ChunkTokenizer::load(path);
  EXPECT_EQ(again.to_json(), kPythonJson);
  EXPECT_EQ(again.encode(std::string_view("F\u00c9")), tok.encode(std::string_view("F\u00c9")));
}

TEST(VocabFile, RejectsBadFilesWithTheirName) {
  auto error_of = [](const std::string& text) {
    try {
      ChunkTokenizer::from_json(text, "bad.json");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("{not json").find("bad.json: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("[1,2]").find("bad.json: not a chunk vocabulary"), std::string::npos);
  EXPECT_NE(error_of(R"({"chunk_to_idx": {"<UNK>": 0, "a": 1, "b": 1}})").find("out of range or repeated"), std::string::npos);
  EXPECT_NE(error_of(R"({"chunk_to_idx": {"<UNK>": 0, "a": 5}})").find("out of range"), std::string::npos);
  EXPECT_NE(error_of(R"({"chunk_to_idx": {"a": 0}})").find("id 0 must be"), std::string::npos);
  EXPECT_NE(error_of(R"({"chunk_to_idx": {"<UNK>": 0, "a": 1}, "vocab_size": 3})").find("vocab_size 3"), std::string::npos);
  EXPECT_NE(error_of(R"({"chunk_to_idx": {"<UNK>": 0, "a": 1}, "idx_to_chunk": {"1": "b"}})").find("disagrees"), std::string::npos);
  EXPECT_NE(error_of(R"({"chunk_to_idx": {"<UNK>": 0, "a": "1"}})").find("not an integer"), std::string::npos);
  EXPECT_EQ(error_of(R"({"chunk_to_idx": {"<UNK>": 0, "a": 1}})"), "no error");
}

TEST(Utf8, RejectsInvalidInputWithByteOffset) {
  ChunkTokenizer tok;
  auto offset_of = [&](const std::string& bytes) -> long {
    try {
      tok.encode(std::string_view(bytes));
    } catch (const Utf8Error& e) {
      return static_cast<long>(e.offset);
    }
    return -1;
  };
  EXPECT_EQ(offset_of("ok"), -1);
  EXPECT_EQ(offset_of("ab\xff"), 2);           // invalid lead byte
  EXPECT_EQ(offset_of("abc\xc3"), 3);          // truncated
  EXPECT_EQ(offset_of("a\xc0\xaf"), 1);        // overlong '/'
  EXPECT_EQ(offset_of("a\xed\xa0\x80"), 1);    // UTF-16 surrogate
  EXPECT_EQ(offset_of("a\xf4\x90\x80\x80"), 1);// above U+10FFFF
  EXPECT_EQ(offset_of("\xe2\x82x"), 0);        // bad continuation
}

TEST(VocabBuilder, StreamingAFileEqualsTheWholeText) {
  // Over 3 MiB so several read blocks; multi-byte characters and final sigmas land on
  // every block boundary position.
  std::string text;
  for (int i = 0; text.size() < (3u << 20) + 17; ++i)
    text += (i % 7 == 0 ? "\u039f\u0394\u039f\u03a3 " : i % 5 == 0 ? "\U0001F600\u00c9t\u00c9 " : "The Cat sat ");
  std::string path = test_path("big.txt");
  write_file(path, text);
  VocabBuilder streamed, whole;
  streamed.add_file(path);
  whole.add_text(text);
  EXPECT_EQ(streamed.texts(), 1u);
  EXPECT_EQ(streamed.chunks_seen(), whole.chunks_seen());
  EXPECT_EQ(streamed.build().to_json(), whole.build().to_json());
}

TEST(VocabBuilder, InvalidUtf8InAFileNamesFileAndOffset) {
  std::string path = test_path("bad.txt");
  write_file(path, std::string(2000000, 'a') + "\xff");
  VocabBuilder builder;
  try {
    builder.add_file(path);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("byte offset 2000000"), std::string::npos) << e.what();
  }
}

TEST(VocabBuilder, JsonLinesField) {
  std::string path = test_path("texts.jsonl");
  write_file(path, "{\"text\": \"once upon a time\", \"id\": 1}\n\n{\"text\": \"hello there\"}\n");
  VocabBuilder builder;
  builder.add_jsonl_file(path, "text");
  EXPECT_EQ(builder.texts(), 2u);
  EXPECT_EQ(builder.build().encode(std::string_view("Hello time!")), (std::vector<int32_t>{6, 9, 1, 8, 2, 0}));
  write_file(path, "{\"text\": \"fine\"}\n{\"body\": \"no text\"}\n");
  VocabBuilder bad;
  try {
    bad.add_jsonl_file(path, "text");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":2: no string field \"text\""), std::string::npos) << e.what();
  }
}

TEST(VocabBuilder, MinCountAndMaxSize) {
  VocabBuilder builder;
  builder.add_text("once upon a time");
  builder.add_text("hello there");
  EXPECT_EQ(builder.build({2, 0}).vocab_size(), 3);  // <UNK>, " t", "e"
  ChunkTokenizer capped = builder.build({1, 4});
  EXPECT_EQ(capped.vocab_size(), 4);
  EXPECT_EQ(capped.chunk(3), " a");
}

}  // namespace
}  // namespace i3
