// Where tracker writes go: the one narrow interface between a producer of events (tracker::Run)
// and what stores them (tracker::Store, or a relay to another process).
#pragma once

#include <future>
#include <optional>

#include "tracker/db/content.h"
#include "tracker/events/events.h"

namespace tracker {

// What applying one event made.
struct Applied {
  int64_t run_id = 0;      // the run's id in the receiving database (0 for runless events)
  bool duplicate = false;  // its seq was applied before: nothing changed
  std::optional<ArtifactVersion> artifact;  // artifact_logged, _used, _alias, _deleted: the version
};

class Sink {
 public:
  virtual ~Sink() = default;

  // Queues `event` and returns without waiting for the disk (blocking only while the sink's
  // buffer is full: back-pressure, never loss). Events of one run must be submitted in seq
  // order. A failure to apply it is the sink's: every later call rethrows it.
  virtual void submit(Event event) = 0;
  // Queues `event` and returns a future for what applying it made, ready once that is durable.
  // Its failure goes to the future alone (the event changed nothing; the sink carries on).
  virtual std::future<Applied> submit_for_result(Event event) = 0;
  // Returns once everything submitted before the call is durable. Rethrows the sink's failure.
  virtual void flush() = 0;
  // The content store that artifact files go into before their artifact_logged event.
  virtual ContentStore& content() = 0;
};

}  // namespace tracker
