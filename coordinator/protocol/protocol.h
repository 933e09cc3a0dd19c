// The wire protocol between the coordinator, its workers and its command-line clients.
//
// Transport: ZeroMQ over TCP. The coordinator binds a ROUTER socket; workers and clients
// connect DEALER sockets (a worker keeps one for its lifetime, a client one per command).
// A message is a multipart ZeroMQ message of at least three frames:
//
//   [ "i3lab/1" ][ TYPE ][ JSON body: one object ][ blob ]...
//
// Frame 0 names the protocol and its version: a peer of another version is answered with
// nothing and logged by name, never guessed at. TYPE is one of the names in the table below.
// Blobs follow only where a type says so (artifact chunks carry file bytes, not JSON).
//
// Worker → coordinator                      Coordinator → worker
//   HELLO      a worker arrives or returns    WELCOME    registered; the timing it expects
//   HEARTBEAT  alive (both ways, every 1 s)   HEARTBEAT
//   STARTED    a job's process started        ASSIGN     run this job (a lease on one attempt)
//   EXITED     a job's process ended          CANCEL     stop this job (SIGTERM, then SIGKILL)
//   LOG        a job's console lines          LOG_ACK    the lines stored
//   EVENTS     a job's tracker events          EVENTS_ACK the relay number stored; files it lacks
//   UPLOAD     a chunk of an artifact file    UPLOAD_ACK the bytes it holds of the file
//   FETCH      ask for a chunk of a file      FETCH_DATA the chunk (resuming a run elsewhere)
//   BYE        leaving (clean shutdown)       RESYNC     unknown worker: send HELLO again
// Client → coordinator                      Coordinator → client
//   REQUEST    an operation ("submit",        REPLY      its result
//              "jobs", "cancel", "workers",   ERROR      why it failed (a message for people)
//              "logs") with its arguments
//
// Leases. ASSIGN names a job and an attempt; only that attempt's STARTED, EXITED and EVENTS
// count. A multi-rank attempt has one lease per rank: ASSIGN, STARTED, EXITED, EXITED_ACK,
// CANCEL, LOG, LOG_ACK, EVENTS and EVENTS_ACK then also carry "rank" (an optional integer, 0 when absent), and
// each rank numbers its own LOG lines. A worker that returns says in HELLO which attempts it still runs, so the coordinator
// re-queues exactly the others, and nothing runs twice.
//
// Tracker data (tracker/relay/relay.h). A job writes its run into a database on its worker;
// the worker forwards that database's relay log as EVENTS {job, attempt, events: [[N, EVENT],
// …], gone: [sha256…]} (N the relay number, EVENT the JSON form of tracker/events/events.h),
// one batch in flight per attempt, and the coordinator applies them in its group commit and
// answers EVENTS_ACK {job, attempt, upto} once they are durable. Events it has applied before
// (by run and seq) are skipped, so a replay after a reconnect changes nothing. An
// artifact_logged event whose files the coordinator lacks stops the batch: EVENTS_ACK then also
// carries missing: [{sha256, size}], the worker sends each file as UPLOAD {sha256, offset, size}
// + one chunk (≤ kArtifactChunkBytes), each answered by UPLOAD_ACK {sha256, have} (the bytes the
// coordinator holds; it checks the SHA-256 when it has them all, or says "error"), and sends
// the events again. A file the job has deleted since goes in "gone" instead. A training job
// that resumes elsewhere gets its run in ASSIGN's "resume" {run, seed, files: [{sha256, size}]}
// and fetches the checkpoint's files with FETCH {sha256, offset}, answered by FETCH_DATA
// {sha256, offset, size} + the chunk at offset (or "error"), checking each file's SHA-256.
//
// Timing (Paranoid Pirate): each side sends HEARTBEAT when it has sent nothing else for
// kHeartbeatInterval; a peer that is silent for kHeartbeatLiveness intervals is dead. A worker
// reconnects with exponential backoff from kReconnectMin to kReconnectMax and keeps its jobs
// running meanwhile.
//
// Bad input. decode() checks everything before a message is acted on: the frame count, the
// version, the type, the body's size, JSON and nesting (util::parse_json), and the fields the
// type requires with their JSON kinds. A message that fails is a Decoded with a Problem and a
// reason; the receiver logs it with the peer's identity and drops it. It never throws, and a
// rogue peer never crashes a server.
#pragma once

#include <chrono>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace protocol {

// Frame 0 of every message.
constexpr const char* kProtocolTag = "i3lab/1";

// Timing, in milliseconds.
constexpr std::chrono::milliseconds kHeartbeatInterval{1000};
constexpr int kHeartbeatLiveness = 5;  // intervals of silence before a peer is dead (~5 s)
constexpr std::chrono::milliseconds kReconnectMin{250};
constexpr std::chrono::milliseconds kReconnectMax{8000};
constexpr std::chrono::milliseconds kCancelGrace{10000};  // SIGTERM → SIGKILL, unless a job says otherwise
// The same in seconds, as both loops keep time.
constexpr double kHeartbeatSeconds = kHeartbeatInterval.count() / 1000.0;
constexpr double kLivenessSeconds = kHeartbeatSeconds * kHeartbeatLiveness;

// Size limits, checked before a body is parsed. decode() sees frames ZeroMQ has already
// received: the transport must also cap what it receives, so that a 1 GB frame is dropped by
// ZeroMQ, not allocated. libzmq applies ZMQ_MAXMSGSIZE to each frame as it decodes it (a peer
// sending a larger one is disconnected): the transport sets it to kMaxFrameBytes, the largest
// frame this protocol has.
constexpr size_t kMaxFrames = 8;
constexpr size_t kMaxBodyBytes = 8u << 20;   // an EVENTS batch holds at most one 4 MiB table
constexpr size_t kMaxBlobBytes = 4u << 20;   // one artifact chunk
constexpr size_t kArtifactChunkBytes = 1u << 20;  // the chunks both sides send
constexpr size_t kMaxTypeBytes = 32;
constexpr size_t kMaxLogLineBytes = 64u << 10;  // one console line in LOG (longer ones are cut)
constexpr size_t kMaxFrameBytes = kMaxBodyBytes > kMaxBlobBytes ? kMaxBodyBytes : kMaxBlobBytes;

enum class Type {
  kHello,
  kWelcome,
  kHeartbeat,
  kAssign,
  kStarted,
  kExited,
  kExitedAck,
  kCancel,
  kLog,
  kLogAck,
  kEvents,
  kEventsAck,
  kUpload,
  kUploadAck,
  kFetch,
  kFetchData,
  kResync,
  kBye,
  kRequest,
  kReply,
  kError,
};

// "HELLO", "WELCOME", …: the name in frame 1.
const char* type_name(Type type);
// The type named `name`; nothing for an unknown name.
std::optional<Type> type_from_name(const std::string& name);

struct Message {
  Type type = Type::kHeartbeat;
  nlohmann::json body = nlohmann::json::object();
  std::vector<std::string> blobs;
};

// What is wrong with a message that decode() refused.
enum class Problem {
  kNone,
  kFraming,   // too few or too many frames
  kVersion,   // frame 0 is not kProtocolTag
  kUnknownType,
  kOversized,  // a body or blob over its limit
  kMalformed,  // the body is not a JSON object, or a field the type requires is missing or of the wrong kind
};
const char* problem_name(Problem problem);

struct Decoded {
  Message message;
  Problem problem = Problem::kNone;
  std::string reason;  // for the log: what is wrong, with the field; "" when ok
  bool ok() const { return problem == Problem::kNone; }
};

// The frames of `message`. REQUIRES: the message would decode (the fields its type needs are
// there); encode does not check.
std::vector<std::string> encode(const Message& message);

// Checks and parses received frames. Never throws for anything a peer can send.
Decoded decode(const std::vector<std::string>& frames);

}  // namespace protocol
