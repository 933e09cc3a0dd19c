#include "model/train/samples.h"

#include <string_view>

namespace i3 {

nlohmann::json sample_columns() { return {"step", "prompt", "output", "temperature", "top_k"}; }

nlohmann::json sample_rows(I3Model& model, const ChunkTokenizer& tokenizer, const std::vector<std::string>& prompts,
                           SamplingOptions options, int64_t step, const std::function<uint64_t(size_t)>& seed_of) {
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int64_t> ids;
    for (int32_t id : tokenizer.encode(std::string_view(prompts[i]))) ids.push_back(id);
    options.seed = seed_of(i);
    rows.push_back({step, prompts[i], generate(model, tokenizer, ids, options).text, options.temperature, options.top_k});
  }
  return rows;
}

}  // namespace i3
