// Command-line parsing for the i3lab subcommands.
//
// Every subcommand declares the flags it takes; anything else is a usage error that names the
// flag and points at `i3lab <command> --help`. Flags are `--name VALUE` or `--name=VALUE`;
// switches are `--name`. A value flag given twice keeps every value (get_all), e.g. --set.
#pragma once

#include <atomic>
#include <climits>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace cli {

// Wrong use of the command line. main() prints it with a hint and exits with status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct FlagSpec {
  std::set<std::string> values;    // flags that take a value, without the leading "--"
  std::set<std::string> switches;  // flags without a value
};

class Args {
 public:
  // Parses `argv` (the words after the command path). Throws UsageError on an unknown flag or a
  // value flag without a value. "--" ends flag parsing; later words are positional.
  Args(const std::vector<std::string>& argv, const FlagSpec& spec);

  bool has(const std::string& name) const;
  // The last value of a value flag, or `fallback` when absent.
  std::string get(const std::string& name, const std::string& fallback = "") const;
  // REQUIRES: nothing. Throws UsageError naming the flag when it is absent.
  std::string require(const std::string& name) const;
  std::vector<std::string> get_all(const std::string& name) const;
  // Numeric values; a malformed number, or one outside [min, max], is a UsageError naming the
  // flag and the range.
  long long get_int(const std::string& name, long long fallback, long long min = LLONG_MIN,
                    long long max = LLONG_MAX) const;
  double get_double(const std::string& name, double fallback, double min = -HUGE_VAL, double max = HUGE_VAL) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> switches_;
  std::vector<std::string> positional_;
};

// What a subcommand does with its parsed flags; returns the process exit status.
using Handler = std::function<int(const Args&)>;

// One subcommand: "tokenizer build", "generate", ...
struct Command {
  std::string path;     // words after "i3lab", space separated
  std::string summary;  // one line for `i3lab --help`
  std::string usage;    // the full text for `i3lab <path> --help`
  FlagSpec flags;
  Handler run;
};

// Dispatches argv to the command whose path matches the most leading words. Handles --help at
// every level, prints usage errors with a hint (exit 2) and other exceptions as
// "i3lab <path>: error: <what>" (exit 1).
int dispatch(const std::vector<Command>& commands, int argc, char** argv);

// Parses "1,2,3" into integers; throws UsageError naming `what` on a malformed item.
std::vector<long long> parse_int_list(const std::string& text, const std::string& what);

// For commands that serve until stopped: from now on SIGINT and SIGTERM set the returned flag
// instead of ending the process.
const std::atomic<bool>& stop_on_signals();

}  // namespace cli
