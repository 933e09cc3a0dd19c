#include "web/assets/assets.h"

namespace web {

const EmbeddedFile* find_asset(std::string_view path, std::string* content_type) {
  for (const EmbeddedFile& f : embedded_files()) {
    if (path != f.path) continue;
    const std::string_view p = f.path;
    const auto ends = [&](std::string_view suffix) {
      return p.size() >= suffix.size() && p.substr(p.size() - suffix.size()) == suffix;
    };
    *content_type = ends(".html")  ? "text/html; charset=utf-8"
                    : ends(".css") ? "text/css; charset=utf-8"
                    : ends(".js")  ? "text/javascript; charset=utf-8"
                                   : "application/octet-stream";
    return &f;
  }
  return nullptr;
}

}  // namespace web
