// `i3lab sweep`, `sweeps`, `sweep show|rerun|cancel`, `job synthetic`, and the part of `i3lab
// up` that watches a sweep.
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/cli/cli.h"
#include "coordinator/client/client.h"

namespace coordinator {

std::vector<cli::Command> sweep_commands();

// Whether the file at `path` is a sweep definition (it has "method" and "parameters").
bool is_sweep_file(const std::string& path);

// The definition to send to a coordinator: read (JSON or YAML) and checked, a train job's
// relative paths made absolute from this folder. W&B keys i3lab does not use are noted on stderr.
nlohmann::json sweep_definition(const std::string& path);

// Shows sweep `id`'s progress on stderr until it ends or `stop`; then its best trial (with a
// sample the best run generated, read from `db_path`). Returns the sweep as `sweep show --json`.
nlohmann::json watch_sweep(client::Client& c, int64_t id, const std::string& db_path, const std::atomic<bool>& stop);

}  // namespace coordinator
