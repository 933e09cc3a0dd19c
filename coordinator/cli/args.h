// Flags the coordinator's commands share.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <string>

#include "common/cli/cli.h"
#include "common/util/json.h"
#include "coordinator/client/client.h"

namespace coordinator {

// --coordinator ENDPOINT, or the default.
inline std::string endpoint_of(const cli::Args& args) { return args.get("coordinator", client::kDefaultEndpoint); }

// The one positional ID of a `what` (job, sweep): a positive integer, or a UsageError.
inline int64_t id_arg(const cli::Args& args, const std::string& what) {
  if (args.positional().size() != 1) throw cli::UsageError("give one " + what + " ID");
  const std::string& text = args.positional()[0];
  char* end = nullptr;
  errno = 0;
  const long long id = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end || errno || id < 1)
    throw cli::UsageError(what + " ID must be a positive integer, got '" + util::cut(text, 40) + "'");
  return id;
}

}  // namespace coordinator
