#include "coordinator/client/client.h"

#include <zmq.hpp>

#include "common/util/clock.h"
#include "coordinator/keys/keys.h"
#include "coordinator/wire/wire.h"

namespace client {

struct Client::Socket {
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::dealer};
};

Client::Client(const std::string& endpoint) : socket_(std::make_unique<Socket>()), endpoint_(endpoint) {
  wire::configure(socket_->socket);
  if (const std::optional<keys::ClientKeys> k = keys::client_keys_from_environment()) {
    keys::make_client(socket_->socket, k->own, k->server_public_key);
    curve_ = true;
  }
  try {
    socket_->socket.connect(endpoint);
  } catch (const zmq::error_t& e) {
    throw std::invalid_argument("coordinator endpoint " + endpoint + ": " + e.what() + " (use tcp://HOST:PORT)");
  }
}

Client::~Client() = default;

nlohmann::json Client::call(const std::string& op, const nlohmann::json& args, std::chrono::milliseconds timeout) {
  const int64_t id = next_id_++;
  protocol::Message m;
  m.type = protocol::Type::kRequest;
  m.body = {{"op", op}, {"args", args}, {"id", id}};
  const auto deadline = util::Clock::now() + timeout;
  bool sent = false;
  while (true) {
    if (!sent) sent = wire::send(socket_->socket, m);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - util::Clock::now());
    if (left.count() <= 0) break;
    zmq::pollitem_t items[] = {{socket_->socket.handle(), 0, ZMQ_POLLIN, 0}};
    wire::poll(items, 1, std::min(left, std::chrono::milliseconds(sent ? left.count() : 20)));
    while (std::optional<wire::Received> r = wire::receive(socket_->socket, false)) {
      if (!r->decoded.ok()) continue;
      const protocol::Message& reply = r->decoded.message;
      if (reply.body.value("id", int64_t{-1}) != id) continue;  // an answer to an earlier call that timed out
      if (reply.type == protocol::Type::kError) throw RequestError(reply.body["error"].get<std::string>());
      if (reply.type == protocol::Type::kReply) return reply.body["result"];
    }
  }
  throw Unreachable("no answer from a coordinator at " + endpoint_ + " within " + std::to_string(timeout.count() / 1000.0).substr(0, 4) +
                    " s; is `i3lab coordinator` running there (or give --coordinator ENDPOINT)?" +
                    (curve_ ? " With CURVE keys: is this key (I3LAB_KEY) on its --allow list, and I3LAB_COORDINATOR_KEY its public key?"
                            : ""));
}

}  // namespace client
