#include "tracker/cli/commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <unistd.h>

#include "common/util/clock.h"
#include "common/util/json.h"
#include "tracker/db/schema.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"
#include "tracker/sync/sync.h"

namespace tracker {
namespace {

using util::Clock;
using util::seconds_since;

// A summary value in a table for people: 5 significant digits (--json keeps every digit).
std::string for_people(const nlohmann::json& v) {
  if (!v.is_number()) return v.is_null() ? "nan" : v.dump();
  if (v.is_number_integer()) return v.dump();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.5g", v.get<double>());
  return buf;
}

// `j` as one line of JSON. Text read from a damaged database may be invalid UTF-8: such bytes
// are written as U+FFFD rather than throwing, so the output is always valid JSON.
int runs_cmd(const cli::Args& args) {
  RunFilter filter;
  filter.project = args.get("project");
  filter.status = args.get("status");
  filter.tag = args.get("tag");
  filter.where = args.get_all("where");
  filter.sort_by = args.get("sort", "created_at");
  filter.descending = args.has("desc");
  filter.limit = static_cast<size_t>(args.get_int("limit", 0, 0));
  // A malformed --where or --sort is a usage error, before (and without) any database.
  try {
    check_run_filter(filter);
  } catch (const std::invalid_argument& e) {
    throw cli::UsageError(e.what());
  }
  Query q(args.get("db", "i3lab.db"));
  auto runs = q.runs(filter);
  if (args.has("json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : runs) out.push_back(r.to_json());
    std::cout << util::dump_json(out) << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(6) << "id" << std::setw(28) << "name" << std::setw(12) << "project" << std::setw(14)
            << "status" << "summary\n";
  for (const auto& r : runs) {
    std::string summary;
    for (auto it = r.summary.begin(); it != r.summary.end() && summary.size() < 80; ++it)
      if (it.key().rfind("system/", 0) != 0)
        summary += it.key() + "=" + for_people(it.value()["last"]) + " ";
    std::cout << std::setw(6) << r.id << std::setw(28) << r.name.substr(0, 27) << std::setw(12) << r.project.substr(0, 11)
              << std::setw(14) << r.status << summary << "\n";
  }
  return 0;
}

int export_history(const cli::Args& args) {
  const int64_t run = args.get_int("run", 0);
  if (run < 1) throw cli::UsageError("--run ID (a positive run id) is required");
  Query(args.get("db", "i3lab.db")).export_history_csv(run, std::cout, args.has("system"));
  return 0;
}

int sync_cmd(const cli::Args& args) {
  const auto start = Clock::now();
  nlohmann::ordered_json out;
  if (std::filesystem::is_directory(args.require("from"))) {
    const EventFolderReport r = sync_event_folder(args.require("from"), args.require("to"));
    out = {{"events_applied", r.events_applied}, {"events_already_there", r.events_already_there},
           {"events_skipped", r.events_skipped}, {"files_copied", r.files_copied}};
  } else {
    const SyncReport r = sync_databases(args.require("from"), args.require("to"));
    out = {{"runs_added", r.runs_added},     {"runs_updated", r.runs_updated},
           {"points_added", r.points_added}, {"rows_added", r.rows_added},
           {"artifact_versions_added", r.artifact_versions_added}, {"files_copied", r.files_copied}};
  }
  out["seconds"] = seconds_since(start);
  std::cout << (args.has("json") ? out.dump() : out.dump(2)) << "\n";  // numbers only
  return 0;
}

int artifacts_cmd(const cli::Args& args) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& v : Query(args.get("db", "i3lab.db")).artifacts()) out.push_back(v.to_json());
  if (args.has("json")) {
    std::cout << util::dump_json(out) << "\n";
    return 0;
  }
  for (const auto& v : out)
    std::cout << v["name"].get<std::string>() << ":" << v["version"].get<std::string>() << "  " << v["type"].get<std::string>()
              << "  " << v["size"] << " bytes  " << v["files"].size() << " files  aliases " << util::dump_json(v["aliases"]) << "\n";
  return 0;
}

int artifact_get(const cli::Args& args) {
  if (args.positional().size() != 1) throw cli::UsageError("give one artifact reference NAME[:ALIAS|:vN]");
  const std::string db = args.get("db", "i3lab.db");
  Query q(db);
  ArtifactVersion v = q.artifact(args.positional()[0]);
  q.fetch_artifact(v, args.require("out"));
  std::cerr << "fetched " << v.name << ":v" << v.version << " (" << v.files.size() << " files, verified) into "
            << args.get("out") << "\n";
  return 0;
}

int artifact_delete(const cli::Args& args) {
  if (args.positional().size() != 1) throw cli::UsageError("give one artifact reference NAME:vN");
  const std::string db = args.get("db", "i3lab.db");
  Query(db).artifact(args.positional()[0]);  // a missing version or database: an error, no new file
  Store store(db);
  ArtifactVersion v = delete_artifact_version(store, args.positional()[0]);
  std::cerr << "deleted " << v.name << ":v" << v.version << " (" << v.size << " bytes in " << v.files.size()
            << " files; files other versions share are kept)\n";
  return 0;
}

}  // namespace

std::vector<cli::Command> tracker_commands() {
  return {
      {"runs", "list tracked runs",
       "usage: i3lab runs [--db FILE] [--project P] [--status S] [--tag T] [--where COND]... [--sort PATH [--desc]]\n"
       "                  [--limit N] [--json]\n\n"
       "COND is PATH OP VALUE, OP one of = != < <= > >=, PATH e.g. config.lr, summary.val/loss,\n"
       "summary.val/loss.min, name, status. < <= > >= need a number; a VALUE that is empty, has spaces\n"
       "at its ends or starts with = ! < > is written as a JSON string: name=\"<x>\". --sort takes a\n"
       "PATH too. --db defaults to i3lab.db.\n",
       {{"db", "project", "status", "tag", "where", "sort", "limit"}, {"desc", "json"}}, runs_cmd},
      {"export-history", "a run's metric history as CSV",
       "usage: i3lab export-history [--db FILE] --run ID [--system]\n\n"
       "One row per step (columns step, wall, then each key); NaN and ±inf as nan, inf, -inf.\n"
       "System metrics (system/*) are sampled every 10 s on their own axis, not at training steps:\n"
       "--system exports only them, one row per sample (columns sample, wall, then each key).\n",
       {{"db", "run"}, {"system"}}, export_history},
      {"sync", "merge one tracker database into another (idempotent)",
       "usage: i3lab sync --from LOCAL.db --to OTHER.db [--json]\n\n"
       "Adds the runs, points, tables, histograms, console lines and artifact versions of LOCAL.db that\n"
       "OTHER.db lacks (runs matched by uid, artifacts by content). Running it twice changes nothing.\n"
       "LOCAL.db is only read, never modified; one of an older schema is upgraded in a temporary copy.\n"
       "usage: i3lab sync --from FOLDER --to OTHER.db [--json]\n"
       "Stores a run the Python client logged offline (FOLDER: i3lab/offline-run-ID, with events.jsonl).\n",
       {{"from", "to"}, {"json"}}, sync_cmd},
      {"artifacts", "list artifact versions",
       "usage: i3lab artifacts [--db FILE] [--json]\n", {{"db"}, {"json"}}, artifacts_cmd},
      {"artifact get", "copy an artifact version's files out, verifying them",
       "usage: i3lab artifact get [--db FILE] NAME[:ALIAS|:vN] --out DIR\n\n"
       "Each file's SHA-256 is checked on the way out; a damaged file is an error.\n",
       {{"db", "out"}, {}}, artifact_get},
      {"artifact delete", "delete an artifact version and the stored files only it holds",
       "usage: i3lab artifact delete [--db FILE] NAME:vN\n\n"
       "A version that an alias (latest, best, ...) names is refused. Runs that used it lose that lineage.\n",
       {{"db"}, {}}, artifact_delete},
  };
}

}  // namespace tracker
