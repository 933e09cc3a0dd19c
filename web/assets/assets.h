// The dashboard's static files (web/static), compiled into the program by embed.cmake.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace web {

struct EmbeddedFile {
  const char* path;       // "/app.js"
  std::string_view body;  // the file's bytes
};

// Every embedded file.
const std::vector<EmbeddedFile>& embedded_files();

// The file served at `path` ("/app.js"), or nullptr. Its content type in *content_type.
const EmbeddedFile* find_asset(std::string_view path, std::string* content_type);

}  // namespace web
