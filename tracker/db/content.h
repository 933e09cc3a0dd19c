// The content store of a database DB: the bytes of artifact files, each stored once, under
// DB.artifacts/sha256/AB/CDEF… (named by the SHA-256 of the content), however many versions
// hold it. The database records which versions hold which files (schema.h); this is the disk.
//
// Writes are atomic: a file is copied to a temporary name in DB.artifacts/staging and renamed
// into place, so a stored file is always complete, and concurrent writers of the same content
// each rename a complete copy. Reading a file back re-hashes it: a damaged file is an error,
// never data.
#pragma once

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/util/sha256.h"
#include "tracker/events/artifact.h"

namespace tracker {

class ContentStore {
 public:
  // The content store beside the database file `db_path`. Creates nothing yet.
  explicit ContentStore(const std::string& db_path);

  const std::string& root() const { return root_; }  // DB.artifacts
  std::string path_of(const std::string& sha256) const;
  bool has(const std::string& sha256) const;

  // Copies the file `source` in, hashing it on the way, and returns its record under the name
  // `relative`. Throws std::runtime_error naming the file if it cannot be read or written.
  ArtifactFile put(const std::string& source, const std::string& relative) const;
  // Copies stored file `sha256` of `from` into this store, verifying it (one read). Returns
  // false if this store has it already. Throws std::runtime_error if the source copy is missing
  // or damaged.
  bool copy_from(const ContentStore& from, const std::string& sha256) const;
  // The same for the file at `source`, which claims to hold `sha256` (a folder of files named
  // by their hashes, as the Python client writes offline).
  bool copy_in(const std::string& source, const std::string& sha256) const;
  // Copies stored `file` to the path `target` (its folder created), verifying its SHA-256.
  // Throws std::runtime_error naming `label` and the file if it is missing or damaged.
  void fetch(const ArtifactFile& file, const std::string& target, const std::string& label) const;

  // Moves the file `verified` (a whole file whose SHA-256 the caller has checked to be `sha256`,
  // on this store's file system, e.g. under staging_dir()) into the store under that name;
  // removes it instead if the store has that content already. Throws std::runtime_error.
  void adopt(const std::string& verified, const std::string& sha256) const;
  // DB.artifacts/staging: where files being received are written before adopt(). Created.
  std::string staging_dir() const;
  // Up to `max_bytes` of stored file `sha256` from `offset` (sending it in chunks), and its
  // size. Throws std::runtime_error if it is missing, not a regular file (never waits on a
  // FIFO), unreadable, or `offset` is outside 0..size.
  std::string read_chunk(const std::string& sha256, int64_t offset, size_t max_bytes, int64_t* size) const;

  // Moves stored file `sha256` aside (into staging) and returns where it went, or "" if it was
  // not there: a delete inside a transaction that may still roll back. restore() puts it back;
  // std::filesystem::remove() of the returned path finishes the delete after the commit.
  std::string move_aside(const std::string& sha256) const;
  void restore(const std::string& sha256, const std::string& moved) const;

  // A new, empty folder under the store for files about to be logged (on the store's file
  // system, so nothing crosses devices). `what` names it; the caller removes it.
  std::string scratch_dir(const std::string& what) const;

 private:
  std::string temp_name(const std::string& dir) const;
  std::string root_;
};

// Bytes that hash to something other than the name they came under.
struct DamagedContent : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A file arriving in chunks from another machine (UPLOAD, FETCH): written into the store's
// staging folder and hashed as it comes; whole and matching its name, it joins the store
// (adopt). Dropped before that, its partial file is removed.
class IncomingFile {
 public:
  // REQUIRES: `sha256` is 64 lowercase hex digits, `size` >= 0. Throws std::runtime_error if
  // the staging file cannot be made.
  IncomingFile(const ContentStore& store, std::string sha256, int64_t size);
  ~IncomingFile();
  IncomingFile(const IncomingFile&) = delete;
  IncomingFile& operator=(const IncomingFile&) = delete;

  int64_t have() const { return have_; }
  int64_t size() const { return size_; }
  // Appends the next chunk; returns true once the file is whole, checked and in the store.
  // Throws DamagedContent when the whole file hashes to another name, std::runtime_error for
  // more bytes than `size` or a failed write (a full disk); the partial file is then useless.
  bool append(std::string_view chunk);

 private:
  const ContentStore store_;
  std::string sha256_, path_;
  int64_t size_, have_ = 0;
  std::ofstream out_;
  util::Sha256 hash_;
  bool adopted_ = false;
};

}  // namespace tracker
