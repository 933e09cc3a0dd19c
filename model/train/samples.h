// Generation samples as a tracker table: what training logs at each evaluation and a tracked
// `i3lab eval` logs once, so a run's page shows what the model writes as it learns.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/net/generate.h"
#include "model/net/i3_model.h"
#include "model/text/tokenizer.h"

namespace i3 {

// The table's name and columns.
constexpr const char* kSamplesTable = "samples";
nlohmann::json sample_columns();  // ["step", "prompt", "output", "temperature", "top_k"]

// One row per prompt, [step, prompt, output, temperature, top_k]: prompt i continued by
// generate() with `options` and the seed seed_of(i). Leaves the model in eval mode.
nlohmann::json sample_rows(I3Model& model, const ChunkTokenizer& tokenizer, const std::vector<std::string>& prompts,
                           SamplingOptions options, int64_t step, const std::function<uint64_t(size_t)>& seed_of);

}  // namespace i3
