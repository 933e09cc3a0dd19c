#include "coordinator/protocol/protocol.h"

#include <algorithm>

#include "common/util/json.h"

namespace protocol {
namespace {

enum class Kind { kString, kInteger, kNumber, kObject, kArray, kAny };

struct Field {
  const char* name;
  Kind kind;
};

// Each type's name, the body fields it requires (more are allowed: a newer peer of the same
// version may add optional ones), and how many blobs may follow.
struct Spec {
  Type type;
  const char* name;
  std::vector<Field> fields;
  size_t max_blobs = 0;
};

const std::vector<Spec>& specs() {
  using K = Kind;
  static const std::vector<Spec> table = {
      {Type::kHello, "HELLO", {{"worker", K::kString}, {"session", K::kInteger}, {"hostname", K::kString},
                               {"resources", K::kObject}, {"running", K::kArray}, {"exited", K::kArray}}},
      {Type::kWelcome, "WELCOME", {{"worker", K::kString}, {"session", K::kInteger}, {"heartbeat_ms", K::kInteger}}},
      {Type::kHeartbeat, "HEARTBEAT", {}},
      {Type::kAssign, "ASSIGN", {{"job", K::kInteger}, {"attempt", K::kInteger}, {"session", K::kInteger}, {"spec", K::kObject}, {"env", K::kObject}}},
      {Type::kStarted, "STARTED", {{"job", K::kInteger}, {"attempt", K::kInteger}, {"pid", K::kInteger}}},
      {Type::kExited, "EXITED", {{"job", K::kInteger}, {"attempt", K::kInteger}, {"exit_code", K::kInteger}, {"signal", K::kInteger}}},
      {Type::kExitedAck, "EXITED_ACK", {{"job", K::kInteger}, {"attempt", K::kInteger}}},
      {Type::kCancel, "CANCEL", {{"job", K::kInteger}, {"attempt", K::kInteger}}},
      {Type::kLog, "LOG", {{"job", K::kInteger}, {"attempt", K::kInteger}, {"first", K::kInteger}, {"lines", K::kArray}}},
      {Type::kLogAck, "LOG_ACK", {{"job", K::kInteger}, {"attempt", K::kInteger}, {"next", K::kInteger}}},
      {Type::kEvents, "EVENTS", {{"job", K::kInteger}, {"attempt", K::kInteger}, {"events", K::kArray}}},
      {Type::kEventsAck, "EVENTS_ACK", {{"job", K::kInteger}, {"attempt", K::kInteger}, {"upto", K::kInteger}}},
      {Type::kUpload, "UPLOAD", {{"sha256", K::kString}, {"offset", K::kInteger}, {"size", K::kInteger}}, 1},
      {Type::kUploadAck, "UPLOAD_ACK", {{"sha256", K::kString}, {"have", K::kInteger}}},
      {Type::kFetch, "FETCH", {{"sha256", K::kString}, {"offset", K::kInteger}}},
      {Type::kFetchData, "FETCH_DATA", {{"sha256", K::kString}, {"offset", K::kInteger}, {"size", K::kInteger}}, 1},
      {Type::kResync, "RESYNC", {}},
      {Type::kBye, "BYE", {}},
      {Type::kRequest, "REQUEST", {{"op", K::kString}, {"args", K::kObject}}},
      {Type::kReply, "REPLY", {{"result", K::kAny}}},
      {Type::kError, "ERROR", {{"error", K::kString}}},
  };
  return table;
}

const Spec& spec_of(Type type) {
  for (const Spec& s : specs())
    if (s.type == type) return s;
  return specs().front();  // unreachable: every Type is in the table (protocol_test checks)
}

bool has_kind(const nlohmann::json& v, Kind kind) {
  switch (kind) {
    case Kind::kString: return v.is_string();
    case Kind::kInteger: return v.is_number_integer();
    case Kind::kNumber: return v.is_number();
    case Kind::kObject: return v.is_object();
    case Kind::kArray: return v.is_array();
    case Kind::kAny: return true;
  }
  return false;
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kString: return "a string";
    case Kind::kInteger: return "an integer";
    case Kind::kNumber: return "a number";
    case Kind::kObject: return "an object";
    case Kind::kArray: return "an array";
    case Kind::kAny: return "a value";
  }
  return "?";
}

Decoded refuse(Problem problem, std::string reason) {
  Decoded d;
  d.problem = problem;
  d.reason = std::move(reason);
  return d;
}

// A frame's text for the log: at most 32 bytes, bytes outside printable ASCII as \xNN.
std::string printable(const std::string& frame) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < frame.size() && i < 32; ++i) {
    const unsigned char c = static_cast<unsigned char>(frame[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return frame.size() > 32 ? out + "…" : out;
}

}  // namespace

const char* type_name(Type type) { return spec_of(type).name; }

std::optional<Type> type_from_name(const std::string& name) {
  for (const Spec& s : specs())
    if (name == s.name) return s.type;
  return std::nullopt;
}

const char* problem_name(Problem problem) {
  switch (problem) {
    case Problem::kNone: return "ok";
    case Problem::kFraming: return "framing";
    case Problem::kVersion: return "version";
    case Problem::kUnknownType: return "unknown type";
    case Problem::kOversized: return "oversized";
    case Problem::kMalformed: return "malformed";
  }
  return "?";
}

std::vector<std::string> encode(const Message& message) {
  std::vector<std::string> frames = {kProtocolTag, type_name(message.type), util::dump_json(message.body)};
  frames.insert(frames.end(), message.blobs.begin(), message.blobs.end());
  return frames;
}

Decoded decode(const std::vector<std::string>& frames) {
  if (frames.size() < 3 || frames.size() > kMaxFrames)
    return refuse(Problem::kFraming, std::to_string(frames.size()) + " frames; a message has 3 to " +
                                         std::to_string(kMaxFrames) + " ([tag][type][json][blob]...)");
  if (frames[0] != kProtocolTag)
    return refuse(Problem::kVersion, "protocol '" + printable(frames[0]) + "', this side speaks '" + kProtocolTag + "'");
  const std::optional<Type> type = frames[1].size() <= kMaxTypeBytes ? type_from_name(frames[1]) : std::nullopt;
  if (!type) return refuse(Problem::kUnknownType, "unknown message type '" + printable(frames[1]) + "'");
  const Spec& spec = spec_of(*type);
  const std::string where = std::string(spec.name) + ": ";
  if (frames.size() - 3 > spec.max_blobs)
    return refuse(Problem::kFraming, where + std::to_string(frames.size() - 3) + " blob frames, at most " +
                                         std::to_string(spec.max_blobs));
  if (frames[2].size() > kMaxBodyBytes)
    return refuse(Problem::kOversized, where + "body of " + std::to_string(frames[2].size()) + " bytes, over the limit of " +
                                           std::to_string(kMaxBodyBytes));
  for (size_t i = 3; i < frames.size(); ++i)
    if (frames[i].size() > kMaxBlobBytes)
      return refuse(Problem::kOversized, where + "blob of " + std::to_string(frames[i].size()) +
                                             " bytes, over the limit of " + std::to_string(kMaxBlobBytes));

  Decoded d;
  d.message.type = *type;
  try {
    d.message.body = util::parse_json(frames[2], std::string(spec.name) + " body");
  } catch (const util::JsonError& e) {
    return refuse(Problem::kMalformed, e.what());
  }
  if (!d.message.body.is_object()) return refuse(Problem::kMalformed, where + "the body is not a JSON object");
  for (const Field& f : spec.fields) {
    const auto it = d.message.body.find(f.name);
    if (it == d.message.body.end()) return refuse(Problem::kMalformed, where + "no field \"" + f.name + "\"");
    if (!has_kind(*it, f.kind))
      return refuse(Problem::kMalformed, where + "\"" + f.name + "\" must be " + kind_name(f.kind) + ", got " +
                                             util::brief(*it, util::kQuoteChars));
  }
  d.message.blobs.assign(frames.begin() + 3, frames.end());
  return d;
}

}  // namespace protocol
