// Protocol messages (protocol.h) over ZeroMQ sockets: the one place that touches frames.
//
// The coordinator's ROUTER sees [peer identity][frames...]; a DEALER sees the frames alone.
// Sends never block: a message a peer cannot take now (gone, or its queue full) is dropped,
// which the protocol allows (heartbeats, re-sent reports and HELLO repair every loss).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "coordinator/protocol/protocol.h"

namespace wire {

// Socket options every i3lab socket gets: the receive cap per frame (protocol::kMaxFrameBytes),
// no linger on close, bounded queues.
void configure(zmq::socket_t& socket);

// Sends `message`; `peer` (ROUTER only) is the routing identity. Returns false if dropped.
bool send(zmq::socket_t& socket, const protocol::Message& message, const std::string* peer = nullptr);

struct Received {
  std::string peer;  // ROUTER: the sender's identity; DEALER: ""
  protocol::Decoded decoded;
};

// Receives one message if one is waiting (never blocks). For a ROUTER, frame 0 is the peer.
std::optional<Received> receive(zmq::socket_t& socket, bool router);

// zmq::poll, with a signal's interruption (EINTR) returning 0 instead of throwing.
int poll(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout);

// A routing identity for logs: printable text (up to 64 bytes) as it is, anything else as hex
// (the first 16 bytes).
std::string peer_name(const std::string& identity);

// Whether `endpoint` listens or connects only on this machine (tcp://127.0.0.1:…,
// tcp://localhost:…, tcp://[::1]:…, ipc://, inproc://).
bool is_loopback(const std::string& endpoint);

}  // namespace wire
