// This machine's network addresses, as other machines would reach it: what a worker
// advertises for multi-rank jobs and what a rank's Gloo transport binds to.
#pragma once

#include <string>

namespace util {

// Whether `host` (a name or a numeric address) resolves here.
bool resolves(const std::string& host);

// The IPv4 address of the first interface that is up and not loopback; "" when there is none.
std::string first_outward_address();

// Whether `address` is a numeric loopback address (127.x.x.x or ::1).
bool is_loopback(const std::string& address);

}  // namespace util
