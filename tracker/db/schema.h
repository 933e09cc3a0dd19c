// The tracker database file: schema, numbered migrations, and the checks made before a file
// is touched.
//
// PRAGMA application_id marks i3lab databases; PRAGMA user_version counts the migrations
// applied. Opening a file with fewer migrations upgrades it in place; a file from a newer
// i3lab, one whose user_version is no version i3lab wrote (negative, or 0 with tables), a
// SQLite file of another program, or a file that is not a database is refused with DbError
// naming the file, and left unmodified. Files are in WAL mode with synchronous=NORMAL: a committed
// transaction survives the process being killed (not a power cut).
//
// Non-finite values: SQLite cannot store NaN (it becomes NULL), so a NULL metric value means
// NaN; ±inf are stored as they are.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tracker/db/sqlite.h"

namespace tracker {

constexpr int32_t kApplicationId = 0x69336c62;  // "i3lb"

// Bucket widths (in steps) of the metric downsampling tiers (table metric_tiers), finest first.
constexpr int64_t kTierWidths[] = {16, 256, 4096, 65536};
// The tier bucket holding `step`: floor(step / width), also for negative steps.
inline int64_t bucket_of(int64_t step, int64_t width) { return step >= 0 ? step / width : -((-step + width - 1) / width); }

int schema_version();                           // migrations this build knows

enum class OpenMode { kReadWrite, kReadOnly };

// kReadWrite creates a missing or empty (0-byte) file and migrates it to the current schema.
// kReadOnly writes and creates nothing: a missing file, or one without tables (empty, or only
// marked), is a DbError naming it; a file of an older schema is read as it is (what the
// migrations since would add is missing). `max_version` (tests) stops migrating early; past
// schema_version() it is std::invalid_argument.
std::unique_ptr<Db> open_database(const std::string& path, OpenMode mode, int max_version = -1);

}  // namespace tracker
