// CURVE keys: who may talk to a coordinator that listens beyond this machine.
//
// ZeroMQ's CURVE mechanism (CurveZMQ: Curve25519 key exchange, every frame encrypted and
// authenticated) with keys in Z85 text, 40 characters each. `i3lab keygen NAME` writes the key
// pair NAME.key (both keys, mode 0600, JSON {"public": Z85, "secret": Z85}) and prints the public
// key. The coordinator serves with its key pair (--key coordinator.key) and admits only clients
// whose public key is on its allow-list (--allow FILE: one key per line, optionally followed by
// a name; blank lines and # comments are skipped), enforced by a ZAP handler (RFC 27) in its own
// loop. A worker or command-line client connects with its own key pair and the coordinator's
// public key (--key FILE and --coordinator-key KEY|FILE, or I3LAB_KEY and
// I3LAB_COORDINATOR_KEY in its environment).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

namespace keys {

struct KeyPair {
  std::string public_key, secret_key;  // Z85, 40 characters each
};

// A new key pair. Throws std::runtime_error if this libzmq has no CURVE.
KeyPair generate();
// Writes `pair` to `path` (mode 0600; refuses to overwrite). Throws std::runtime_error.
void write_key_file(const std::string& path, const KeyPair& pair);
// Reads a key file written by write_key_file. Throws std::runtime_error naming the file and
// the field for anything else.
KeyPair read_key_file(const std::string& path);
// A public key given as its 40 Z85 characters, or as a key file whose public key is taken.
// Throws std::runtime_error.
std::string public_key_from(const std::string& key_or_file);
// Whether `text` is 40 Z85 characters.
bool is_z85_key(const std::string& text);

// The allow-list: public key → name ("" when the line gave none). Throws std::runtime_error
// naming the file and line for a line that is not a key.
std::map<std::string, std::string> read_allow_list(const std::string& path);

// Socket setup, before bind or connect.
void make_server(zmq::socket_t& socket, const KeyPair& own);
void make_client(zmq::socket_t& socket, const KeyPair& own, const std::string& server_public_key);

// Client keys from the environment (I3LAB_KEY: a key file; I3LAB_COORDINATOR_KEY: a key or a
// key file): both or neither. Throws std::runtime_error naming the variable.
struct ClientKeys {
  KeyPair own;
  std::string server_public_key;
};
std::optional<ClientKeys> client_keys_from_environment();

// ZAP (ZeroMQ's authentication protocol, RFC 27): the reply to one request, admitting a CURVE
// client whose key is in `allowed`. `who` gets the client's key and address for the log.
std::vector<std::string> zap_reply(const std::vector<std::string>& request, const std::map<std::string, std::string>& allowed,
                                   std::string* who, bool* admitted);
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";

}  // namespace keys
