#include <filesystem>
#include <fstream>
#include <future>
#include <stdexcept>
#include <vector>

#include "common/util/files.h"
#include "common/util/json.h"
#include "tracker/events/events.h"
#include "tracker/store/store.h"
#include "tracker/sync/sync.h"

namespace tracker {

namespace fs = std::filesystem;

namespace {
// A table or config event is at most kMaxJsonBytes of values; its JSON line a little more.
constexpr size_t kMaxEventLineBytes = 2 * kMaxJsonBytes;

// The next line of `in` without its newline; false at the end. Stops reading a line past
// `max` bytes (true, with `line` longer than `max`), so a file without newlines is not read
// whole into memory.
bool read_line(std::istream& in, std::string& line, size_t max) {
  line.clear();
  for (int c; (c = in.get()) != std::char_traits<char>::eof();) {
    if (c == '\n') return true;
    line.push_back(static_cast<char>(c));
    if (line.size() > max) return true;
  }
  return !line.empty();
}
}  // namespace

EventFolderReport sync_event_folder(const std::string& folder, const std::string& to) {
  const std::string log = (fs::path(folder) / "events.jsonl").string();
  if (!fs::exists(log)) throw std::invalid_argument(log + ": no such file (is " + folder + " a folder the Python client wrote offline?)");
  util::regular_file_size(log);  // a FIFO or a device is refused here, not waited on
  std::ifstream in(log);
  if (!in) throw std::invalid_argument(log + ": cannot open");
  EventFolderReport report;
  Store store(to);
  // Outcomes are counted as they come, a few thousand at a time, so a long file holds no
  // future per line.
  std::vector<std::future<Applied>> results;
  const auto count = [&] {
    for (auto& r : results) {
      try {
        (r.get().duplicate ? report.events_already_there : report.events_applied) += 1;
      } catch (const DbError&) {
        throw;
      } catch (const std::exception&) {
        ++report.events_skipped;  // a reference to what this database lacks, as the coordinator skips it
      }
    }
    results.clear();
  };
  std::string line;
  for (int64_t n = 1; read_line(in, line, kMaxEventLineBytes); ++n) {
    if (line.empty()) continue;
    const std::string where = log + ":" + std::to_string(n);
    if (line.size() > kMaxEventLineBytes)
      throw std::invalid_argument(where + ": a line longer than " + std::to_string(kMaxEventLineBytes) +
                                  " bytes; no event is that long");
    const nlohmann::json j = util::parse_json(line, where);  // its errors name `where`
    Event event;
    try {
      event = event_from_json(j);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where + ": " + e.what());
    }
    if (const auto* logged = std::get_if<ArtifactLogged>(&event.body)) {
      for (const ArtifactFile& f : logged->files) {
        try {
          if (store.content().copy_in((fs::path(folder) / "files" / f.sha256).string(), f.sha256)) ++report.files_copied;
        } catch (const std::runtime_error& e) {
          throw std::runtime_error(where + ": artifact file " + f.path + ": " + e.what());
        }
      }
    }
    results.push_back(store.submit_for_result(std::move(event)));
    if (results.size() >= 4096) count();
  }
  count();
  store.flush();
  return report;
}

}  // namespace tracker
