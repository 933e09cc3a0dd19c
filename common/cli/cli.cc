#include "common/cli/cli.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <type_traits>
#include <sstream>

namespace cli {

Args::Args(const std::vector<std::string>& argv, const FlagSpec& spec) {
  bool flags_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& word = argv[i];
    if (flags_done || word.size() < 3 || word.compare(0, 2, "--") != 0) {
      if (word == "--") {
        flags_done = true;
        continue;
      }
      positional_.push_back(word);
      continue;
    }
    std::string name = word.substr(2);
    std::string value;
    bool has_inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline_value = true;
    }
    if (spec.switches.count(name)) {
      if (has_inline_value) throw UsageError("--" + name + " takes no value");
      switches_.insert(name);
    } else if (spec.values.count(name)) {
      if (!has_inline_value) {
        if (i + 1 >= argv.size()) throw UsageError("--" + name + " needs a value");
        value = argv[++i];
      }
      values_[name].push_back(value);
    } else {
      throw UsageError("unknown flag --" + name);
    }
  }
}

bool Args::has(const std::string& name) const {
  return switches_.count(name) > 0 || values_.count(name) > 0;
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::string Args::require(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw UsageError("missing required flag --" + name);
  return it->second.back();
}

std::vector<std::string> Args::get_all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

namespace {

template <class T>
std::string shown(T v) {
  if constexpr (std::is_integral_v<T>) {
    return v == LLONG_MAX ? "∞" : v == LLONG_MIN ? "-∞" : std::to_string(v);
  } else {
    if (std::isinf(v)) return v > 0 ? "∞" : "-∞";
    std::ostringstream out;
    out << v;
    return out.str();
  }
}

template <class T>
T in_range(const std::string& name, const std::string& text, T v, T min, T max) {
  if (!(v >= min && v <= max))
    throw UsageError("--" + name + " must be " +
                     (max == std::numeric_limits<T>::max() || (std::is_floating_point_v<T> && std::isinf(max))
                          ? "at least " + shown(min)
                          : "between " + shown(min) + " and " + shown(max)) +
                     ", got " + text);
  return v;
}

}  // namespace

long long Args::get_int(const std::string& name, long long fallback, long long min, long long max) const {
  if (!values_.count(name)) return fallback;
  const std::string text = get(name);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE)
    throw UsageError("--" + name + " expects an integer, got '" + text + "'");
  return in_range(name, text, v, min, max);
}

double Args::get_double(const std::string& name, double fallback, double min, double max) const {
  if (!values_.count(name)) return fallback;
  const std::string text = get(name);
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || std::isnan(v)) throw UsageError("--" + name + " expects a number, got '" + text + "'");
  return in_range(name, text, v, min, max);
}

std::vector<long long> parse_int_list(const std::string& text, const std::string& what) {
  // Accepts "1,2,3", "1, 2, 3" and the JSON form "[1, 2, 3]".
  std::string body = text;
  size_t b = body.find_first_not_of(' '), e = body.find_last_not_of(' ');
  body = b == std::string::npos ? "" : body.substr(b, e - b + 1);
  if (body.size() >= 2 && body.front() == '[' && body.back() == ']') body = body.substr(1, body.size() - 2);
  std::vector<long long> out;
  if (body.find_first_not_of(' ') == std::string::npos) return out;
  std::stringstream in(body);
  for (std::string item; std::getline(in, item, ',');) {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(item.c_str(), &end, 10);
    while (*end == ' ') ++end;
    if (end == item.c_str() || *end != '\0' || errno == ERANGE)
      throw UsageError(what + ": '" + item + "' is not an integer");
    out.push_back(v);
  }
  return out;
}

namespace {

void print_overview(const std::vector<Command>& commands, std::ostream& out) {
  out << "i3lab: train, evaluate and generate with i3 hybrid language models\n\n"
         "usage: i3lab <command> [flags]   (i3lab <command> --help for its flags)\n\ncommands:\n";
  size_t width = 0;
  for (const auto& c : commands) width = std::max(width, c.path.size());
  for (const auto& c : commands) {
    out << "  " << c.path << std::string(width - c.path.size() + 2, ' ') << c.summary << "\n";
  }
}

}  // namespace

int dispatch(const std::vector<Command>& commands, int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  if (words.empty() || words[0] == "--help" || words[0] == "-h" || words[0] == "help") {
    print_overview(commands, std::cout);
    return words.empty() ? 2 : 0;
  }
  // Longest command path that prefixes the words.
  const Command* best = nullptr;
  size_t best_len = 0;
  for (const auto& c : commands) {
    std::vector<std::string> path;
    std::stringstream ss(c.path);
    for (std::string w; ss >> w;) path.push_back(w);
    if (path.size() > words.size() || path.size() <= best_len) continue;
    if (std::equal(path.begin(), path.end(), words.begin())) {
      best = &c;
      best_len = path.size();
    }
  }
  if (!best) {
    // A group word ("tokenizer") alone or with an unknown subcommand: list that group.
    std::vector<const Command*> group;
    for (const auto& c : commands)
      if (c.path.rfind(words[0] + " ", 0) == 0) group.push_back(&c);
    if (!group.empty()) {
      bool help = words.size() == 1 || words[1] == "--help" || words[1] == "-h";
      std::ostream& out = help ? std::cout : std::cerr;
      if (!help) out << "i3lab " << words[0] << ": unknown subcommand '" << words[1] << "'\n";
      out << "subcommands of '" << words[0] << "':\n";
      for (const auto* c : group) out << "  i3lab " << c->path << "  — " << c->summary << "\n";
      return help && words.size() > 1 ? 0 : 2;
    }
    std::cerr << "i3lab: unknown command '" << words[0] << "' (see 'i3lab --help')\n";
    return 2;
  }
  std::vector<std::string> rest(words.begin() + best_len, words.end());
  for (const auto& w : rest) {
    if (w == "--") break;
    if (w == "--help" || w == "-h") {
      std::cout << best->usage;
      return 0;
    }
  }
  try {
    Args args(rest, best->flags);
    return best->run(args);
  } catch (const UsageError& e) {
    std::cerr << "i3lab " << best->path << ": " << e.what() << " (see 'i3lab " << best->path << " --help')\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "i3lab " << best->path << ": error: " << e.what() << "\n";
    return 1;
  }
}

namespace {
std::atomic<bool> stop_requested{false};
extern "C" void cli_request_stop(int) { stop_requested.store(true); }
}  // namespace

const std::atomic<bool>& stop_on_signals() {
  signal(SIGINT, cli_request_stop);
  signal(SIGTERM, cli_request_stop);
  return stop_requested;
}

}  // namespace cli
