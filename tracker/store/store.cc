#include "tracker/store/store.h"

#include <chrono>
#include <variant>

#include "tracker/db/schema.h"
#include "tracker/store/apply.h"

namespace tracker {
namespace {

size_t points_in(const Event& e) {
  const auto* m = std::get_if<Metrics>(&e.body);
  return m ? m->values.size() : 0;
}

}  // namespace

Store::Store(const std::string& path, Options options)
    : path_(path), options_(options), db_(open_database(path, OpenMode::kReadWrite)), content_(path) {
  writer_ = std::thread([this] { writer_loop(); });
}

Store::~Store() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_one();
  writer_.join();
}

void Store::check_error_locked() const {
  if (error_) std::rethrow_exception(error_);
}

void Store::enqueue(Queued queued) {
  const size_t points = points_in(queued.event);
  std::unique_lock<std::mutex> lock(mu_);
  check_error_locked();
  space_cv_.wait(lock, [&] { return queued_points_ + points <= options_.max_pending_points || error_ || queue_.empty(); });
  check_error_locked();
  const bool wake = queued.result.has_value();
  queue_.push_back(std::move(queued));
  queued_points_ += points;
  ++queued_;
  if (wake) result_waiting_ = true;
  if (wake || queued_points_ >= options_.batch_points) work_cv_.notify_one();
}

void Store::submit(Event event) { enqueue({std::move(event), std::nullopt}); }

std::future<Applied> Store::submit_for_result(Event event) {
  std::promise<Applied> promise;
  std::future<Applied> result = promise.get_future();
  enqueue({std::move(event), std::move(promise)});
  return result;
}

void Store::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t ticket = queued_;
  flush_requested_ = true;
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return committed_ >= ticket || error_; });
  check_error_locked();
}

Store::RunPosition Store::run_position(int64_t run_id) {
  flush();
  auto db = open_database(path_, OpenMode::kReadOnly);
  Stmt s(*db, "SELECT uid, event_seq FROM runs WHERE id = ?");
  s.bind(1, run_id);
  if (!s.step()) throw NotFound("no run with id " + std::to_string(run_id) + " in " + path_);
  return {s.text(0), static_cast<uint64_t>(s.int64(1))};
}

void Store::writer_loop() {
  std::vector<Queued> batch;
  while (true) {
    uint64_t ticket;
    bool stop;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait_for(lock, std::chrono::milliseconds(options_.flush_interval_ms), [&] {
        return stopping_ || flush_requested_ || result_waiting_ || queued_points_ >= options_.batch_points;
      });
      batch.swap(queue_);
      queued_points_ = 0;
      ticket = queued_;
      flush_requested_ = result_waiting_ = false;
      stop = stopping_;
    }
    space_cv_.notify_all();
    if (!batch.empty()) {
      try {
        write_batch(batch);
      } catch (...) {
        // The transaction rolled back: keep the writer's error for every later call, so callers
        // learn that what they submitted since the last flush() was not stored. Waiters of this
        // batch and of anything queued meanwhile get it too.
        std::vector<Queued> rest;
        {
          std::lock_guard<std::mutex> lock(mu_);
          error_ = std::current_exception();
          rest.swap(queue_);
        }
        for (auto* list : {&batch, &rest})
          for (auto& q : *list)
            if (q.result) q.result->set_exception(error_);
        done_cv_.notify_all();
        space_cv_.notify_all();
        return;
      }
    }
    batch.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      committed_ = ticket;
    }
    done_cv_.notify_all();
    if (stop) {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) return;
    }
  }
}

void Store::write_batch(std::vector<Queued>& batch) {
  Db& db = *db_;
  Applier applier(db, content_);
  std::vector<std::pair<std::promise<Applied>*, Applied>> done;
  std::vector<std::pair<std::promise<Applied>*, std::exception_ptr>> failed;
  try {
    WriteTransaction tx(db);
    for (Queued& q : batch) {
      if (!q.result) {
        applier.apply(q.event);  // a failure here is the writer's
        continue;
      }
      try {
        done.emplace_back(&*q.result, applier.apply_isolated(q.event));
      } catch (const TransactionLost&) {
        throw;  // the whole batch fails
      } catch (...) {
        failed.emplace_back(&*q.result, std::current_exception());
      }
    }
    applier.finish_batch();
    tx.commit();
  } catch (...) {
    applier.rolled_back();
    throw;
  }
  applier.committed();
  // Only now is what they made durable.
  for (auto& [promise, applied] : done) promise->set_value(std::move(applied));
  for (auto& [promise, error] : failed) promise->set_exception(error);
}

ArtifactVersion set_alias(Store& store, const std::string& name, const std::string& alias, int64_t version) {
  Event e{"", 0, ArtifactAlias{name + ":v" + std::to_string(version), alias}};
  check(e);
  return *store.apply(std::move(e)).artifact;
}

ArtifactVersion delete_artifact_version(Store& store, const std::string& ref) {
  Event e{"", 0, ArtifactDeleted{ref}};
  check(e);
  return *store.apply(std::move(e)).artifact;
}

}  // namespace tracker
