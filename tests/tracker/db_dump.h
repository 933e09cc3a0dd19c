// Every row of every table of a tracker database, as text: equal dumps mean equal databases.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "tracker/query/query.h"

namespace tracker {

inline std::string db_dump(const std::string& db_path) {
  Query q(db_path);
  std::string out;
  for (const char* table : {"projects", "runs", "metric_keys", "metrics", "metric_tiers", "summaries", "run_tables",
                            "histograms", "console", "artifacts", "artifact_versions", "artifact_files",
                            "artifact_aliases", "artifact_usage"}) {
    // Rows as text, sorted: the comparison must not depend on scan order.
    std::vector<std::string> rows;
    Stmt s(q.db(), (std::string("SELECT * FROM ") + table).c_str());
    while (s.step()) {
      std::string row = table;
      for (int c = 0; c < s.columns(); ++c) row += "|" + s.text(c);
      rows.push_back(row);
    }
    std::sort(rows.begin(), rows.end());
    for (const auto& r : rows) out += r + "\n";
  }
  return out;
}

}  // namespace tracker
