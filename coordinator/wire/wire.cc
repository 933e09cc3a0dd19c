#include "coordinator/wire/wire.h"

#include <cerrno>
#include <vector>

namespace wire {

void configure(zmq::socket_t& socket) {
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxFrameBytes));
  socket.set(zmq::sockopt::linger, 0);
  // Messages queued per peer, each way (ZeroMQ's default, said here because it bounds what a
  // peer that floods or stops reading can make this process hold).
  socket.set(zmq::sockopt::sndhwm, 1000);
  socket.set(zmq::sockopt::rcvhwm, 1000);
}

bool send(zmq::socket_t& socket, const protocol::Message& message, const std::string* peer) {
  std::vector<std::string> frames = protocol::encode(message);
  try {
    if (peer) {
      if (!socket.send(zmq::buffer(*peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
    }
    for (size_t i = 0; i < frames.size(); ++i) {
      const auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore | zmq::send_flags::dontwait
                                                : zmq::send_flags::dontwait;
      if (!socket.send(zmq::buffer(frames[i]), flags)) return false;
    }
  } catch (const zmq::error_t&) {
    return false;  // EHOSTUNREACH from a ROUTER with mandatory routing, a closed context: dropped
  }
  return true;
}

std::optional<Received> receive(zmq::socket_t& socket, bool router) {
  std::vector<std::string> frames;
  zmq::message_t part;
  if (!socket.recv(part, zmq::recv_flags::dontwait)) return std::nullopt;
  while (true) {
    // Keep at most kMaxFrames + 1 (the identity) frames; read and drop the rest of a message
    // with too many, so the next message starts clean.
    if (frames.size() <= protocol::kMaxFrames + 1) frames.emplace_back(part.to_string());
    else frames.back() = "";  // marks the count as over the limit without holding the bytes
    if (!part.more()) break;
    if (!socket.recv(part, zmq::recv_flags::none)) break;
  }
  Received r;
  if (router) {
    r.peer = frames.front();
    frames.erase(frames.begin());
  }
  r.decoded = protocol::decode(frames);
  return r;
}

int poll(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout) {
  try {
    return zmq::poll(items, count, timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return 0;
    throw;
  }
}

std::string peer_name(const std::string& identity) {
  bool printable = !identity.empty() && identity.size() <= 64;
  for (unsigned char c : identity) printable = printable && c >= 0x21 && c < 0x7f;
  if (printable) return identity;
  static const char kHex[] = "0123456789abcdef";
  std::string out = "0x";
  for (size_t i = 0; i < identity.size() && i < 16; ++i) {
    const unsigned char c = static_cast<unsigned char>(identity[i]);
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return identity.size() > 16 ? out + "…" : out;
}

bool is_loopback(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  for (const char* prefix : {"tcp://127.0.0.1:", "tcp://localhost:", "tcp://[::1]:"})
    if (endpoint.rfind(prefix, 0) == 0) return true;
  return false;
}

}  // namespace wire
