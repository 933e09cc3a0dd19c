#include "web/cli/commands.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include "web/server/server.h"

namespace web {
namespace {

int ui_cmd(const cli::Args& args) {
  Options options;
  options.db_path = args.require("db");
  if (!std::filesystem::exists(options.db_path))
    throw std::runtime_error(options.db_path + ": no such database (i3lab train, or a coordinator, writes one)");
  parse_http_address(args.get("http", "127.0.0.1:8080"), &options);
  Server server(options);
  std::cout << "dashboard: " << server.url() << "/  (read-only, database " << options.db_path << "; Ctrl-C stops)" << std::endl;
  if (const std::string w = exposure_warning(options); !w.empty()) std::cerr << "ui: warning: " << w << std::endl;
  const std::atomic<bool>& stop = cli::stop_on_signals();
  std::atomic<bool> served{false};
  std::thread watcher([&] {  // cpp-httplib's listen loop is stopped from another thread
    while (!stop.load() && !served.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  server.serve();
  served = true;
  watcher.join();
  return 0;
}

}  // namespace

std::vector<cli::Command> web_commands() {
  return {
      {"ui", "serve the dashboard for a database, read-only, without a coordinator",
       "usage: i3lab ui --db FILE [--http HOST:PORT]\n"
       "Serves the dashboard and the read half of the HTTP API (docs/api.md) for FILE at\n"
       "http://HOST:PORT/ (default 127.0.0.1:8080; port 0 picks a free one). Runs being written by\n"
       "another process show live. A coordinator serves the same with writes: i3lab coordinator --http.\n",
       {{"db", "http"}, {}}, ui_cmd},
  };
}

}  // namespace web
