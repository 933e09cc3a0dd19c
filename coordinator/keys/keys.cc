#include "coordinator/keys/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/util/files.h"
#include "common/util/json.h"

namespace keys {

bool is_z85_key(const std::string& text) {
  static const std::string kZ85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  return text.size() == 40 && text.find_first_not_of(kZ85) == std::string::npos;
}

KeyPair generate() {
  char pub[41], sec[41];
  if (!zmq_has("curve") || zmq_curve_keypair(pub, sec) != 0)
    throw std::runtime_error("this libzmq cannot make CURVE keys (built without libsodium?)");
  return {pub, sec};
}

void write_key_file(const std::string& path, const KeyPair& pair) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(path + ": " + (errno == EEXIST ? "exists already; keys are never overwritten" : std::string(strerror(errno))));
  const std::string text = nlohmann::json{{"public", pair.public_key}, {"secret", pair.secret_key}}.dump() + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) throw std::runtime_error(path + ": write failed");
}

KeyPair read_key_file(const std::string& path) {
  nlohmann::json j;
  try {
    j = util::parse_json(util::read_file(path), path);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(e.what()) + " (a key file written by `i3lab keygen`)");
  }
  KeyPair pair;
  for (const char* field : {"public", "secret"}) {
    if (!j.is_object() || !j.contains(field) || !j[field].is_string() || !is_z85_key(j[field].get<std::string>()))
      throw std::runtime_error(path + ": \"" + field + "\" is not a key of 40 Z85 characters (a key file written by `i3lab keygen`)");
    (std::string(field) == "public" ? pair.public_key : pair.secret_key) = j[field].get<std::string>();
  }
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077)) {
    char mode[8];
    snprintf(mode, sizeof mode, "%o", static_cast<unsigned>(st.st_mode & 0777));
    throw std::runtime_error(path + ": open to other users (mode " + mode + "), and it holds a secret key: chmod 600 " + path);
  }
  return pair;
}

std::string public_key_from(const std::string& key_or_file) {
  // The key as `i3lab keygen` prints it, perhaps with its name and newline (from a Secret).
  const size_t start = key_or_file.find_first_not_of(" \t\r\n");
  if (start != std::string::npos && is_z85_key(key_or_file.substr(start, 40)) &&
      (key_or_file.size() == start + 40 || std::isspace(static_cast<unsigned char>(key_or_file[start + 40]))))
    return key_or_file.substr(start, 40);
  nlohmann::json j;
  try {
    j = util::parse_json(util::read_file(key_or_file), key_or_file);
  } catch (const std::exception& e) {
    throw std::runtime_error("a coordinator key is 40 Z85 characters or a key file: " + std::string(e.what()));
  }
  if (!j.is_object() || !j.contains("public") || !j["public"].is_string() || !is_z85_key(j["public"].get<std::string>()))
    throw std::runtime_error(key_or_file + ": \"public\" is not a key of 40 Z85 characters");
  return j["public"].get<std::string>();
}

std::map<std::string, std::string> read_allow_list(const std::string& path) {
  std::istringstream in(util::read_file(path));  // a regular file of bounded size (never a FIFO)
  std::map<std::string, std::string> out;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    const size_t start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos || line[start] == '#') continue;
    const size_t end = line.find_first_of(" \t\r", start);
    const std::string key = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!is_z85_key(key))
      throw std::runtime_error(path + ":" + std::to_string(number) + ": not a public key of 40 Z85 characters (as `i3lab keygen` prints)");
    std::string name;
    if (end != std::string::npos) {
      const size_t n = line.find_first_not_of(" \t\r", end);
      if (n != std::string::npos) name = line.substr(n, line.find_last_not_of(" \t\r") + 1 - n);
    }
    out[key] = name;
  }
  return out;
}

void make_server(zmq::socket_t& socket, const KeyPair& own) {
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, own.secret_key);
  socket.set(zmq::sockopt::zap_domain, "i3lab");
}

void make_client(zmq::socket_t& socket, const KeyPair& own, const std::string& server_public_key) {
  socket.set(zmq::sockopt::curve_serverkey, server_public_key);
  socket.set(zmq::sockopt::curve_publickey, own.public_key);
  socket.set(zmq::sockopt::curve_secretkey, own.secret_key);
}

std::optional<ClientKeys> client_keys_from_environment() {
  const char* key = std::getenv("I3LAB_KEY");
  const char* server = std::getenv("I3LAB_COORDINATOR_KEY");
  const bool has_key = key && *key, has_server = server && *server;
  if (!has_key && !has_server) return std::nullopt;
  if (!has_key) throw std::runtime_error("I3LAB_COORDINATOR_KEY is set but I3LAB_KEY (this side's key file) is not");
  if (!has_server) throw std::runtime_error("I3LAB_KEY is set but I3LAB_COORDINATOR_KEY (the coordinator's public key) is not");
  return ClientKeys{read_key_file(key), public_key_from(server)};
}

std::vector<std::string> zap_reply(const std::vector<std::string>& request, const std::map<std::string, std::string>& allowed,
                                   std::string* who, bool* admitted) {
  // Request: version, request id, domain, address, identity, mechanism, credentials...
  *admitted = false;
  if (request.size() < 6 || request[0] != "1.0") {
    *who = "a malformed ZAP request";
    return {"1.0", request.size() > 1 ? request[1] : "", "500", "malformed request", "", ""};
  }
  const std::string& address = request[3];
  if (request[5] != "CURVE" || request.size() != 7 || request[6].size() != 32) {
    *who = "a client at " + address + " without a CURVE key";
    return {"1.0", request[1], "400", "CURVE keys required", "", ""};
  }
  char z85[41];
  zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(request[6].data()), 32);
  const auto it = allowed.find(z85);
  *who = "key " + std::string(z85) + (it != allowed.end() && !it->second.empty() ? " (" + it->second + ")" : "") + " at " + address;
  if (it == allowed.end()) return {"1.0", request[1], "400", "key not on the allow-list", "", ""};
  *admitted = true;
  return {"1.0", request[1], "200", "OK", z85, ""};
}

}  // namespace keys
