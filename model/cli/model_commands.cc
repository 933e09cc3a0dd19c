#include "model/cli/handlers.h"

#include <chrono>
#include <cmath>
#include <iostream>
#include <optional>

#include "common/util/json.h"
#include "model/data/demo_corpus.h"
#include "model/io/model_folder.h"
#include "model/net/generate.h"
#include "model/net/runtime.h"
#include "model/text/tokenizer.h"
#include "model/text/unicode.h"

namespace i3 {
namespace {

using cli::Args;
using cli::UsageError;
using Json = nlohmann::ordered_json;

// --- tokenizer ---------------------------------------------------------------------------------

int tokenizer_build(const Args& args) {
  const std::string out = args.require("out");
  if (args.positional().empty()) throw UsageError("give at least one input FILE");
  VocabBuilder builder;
  const std::string field = args.get("jsonl-field");
  const auto start = std::chrono::steady_clock::now();
  for (const auto& path : args.positional()) {
    if (field.empty()) {
      builder.add_file(path);
    } else {
      builder.add_jsonl_file(path, field);
    }
    std::cerr << "  " << path << " done; so far: texts " << builder.texts() << ", chunks " << builder.chunks_seen()
              << ", distinct " << builder.distinct_chunks() << "\n";
  }
  VocabBuilder::Options options;
  options.min_count = args.get_int("min-count", 1, 1);
  options.max_size = args.get_int("max-size", 0, 0);
  ChunkTokenizer tok = builder.build(options);
  tok.save(out);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "wrote " << out << ": " << tok.vocab_size() << " ids (texts: " << builder.texts() << ", " << secs
            << " s)\n";
  return 0;
}

int tokenizer_encode(const Args& args) {
  ChunkTokenizer tok = ChunkTokenizer::load(args.require("vocab"));
  std::cout << Json(tok.encode(std::string_view(args.require("text")))).dump() << "\n";
  return 0;
}

int tokenizer_decode(const Args& args) {
  ChunkTokenizer tok = ChunkTokenizer::load(args.require("vocab"));
  std::vector<int64_t> ids;
  for (long long id : cli::parse_int_list(args.require("ids"), "--ids")) ids.push_back(id);
  std::cout << tok.decode(ids) << "\n";
  return 0;
}

// --- model -------------------------------------------------------------------------------------

// The model shape from --preset / --config plus --vocab / --vocab-size and --set overrides.
ModelConfig config_from_args(const Args& args, std::optional<ChunkTokenizer>* tokenizer) {
  ModelConfig config;
  if (args.has("preset") == args.has("config")) throw UsageError("give exactly one of --preset NAME or --config FILE");
  if (args.has("preset")) {
    try {
      config = preset(args.get("preset"));
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  } else {
    const std::string path = args.get("config");
    config = ModelConfig::from_json(util::read_json_file(path), path, preset("i3-80m"));
  }
  if (args.has("vocab")) {
    *tokenizer = ChunkTokenizer::load(args.get("vocab"));
    config.vocab_size = (*tokenizer)->vocab_size();
  }
  if (args.has("vocab-size")) config.vocab_size = args.get_int("vocab-size", 0, 1);
  for (const auto& s : args.get_all("set")) config.set(s);
  if (tokenizer->has_value() && config.vocab_size < (*tokenizer)->vocab_size())
    throw std::invalid_argument("vocab_size " + std::to_string(config.vocab_size) + " is smaller than the vocabulary's " +
                                std::to_string((*tokenizer)->vocab_size()) + " ids");
  config.validate();
  return config;
}

int model_info(const Args& args) {
  ModelConfig config;
  if (args.has("model")) {
    ModelFolder folder = load_model_folder(args.get("model"));
    for (const auto& w : folder.warnings) std::cerr << "warning: " << w << "\n";
    config = folder.config;
  } else {
    std::optional<ChunkTokenizer> tok;
    config = config_from_args(args, &tok);
  }
  Json out;
  out["parameters"] = config.parameter_count();
  out["config"] = config.to_json();
  out["bytes_fp32"] = config.parameter_count() * 4;
  if (args.has("json")) {
    std::cout << out.dump() << "\n";
  } else {
    std::cout << "parameters: " << config.parameter_count() << " (" << config.parameter_count() * 4 / 1e6
              << " MB in fp32)\nconfig: " << config.to_json().dump() << "\n";
  }
  return 0;
}

int model_init(const Args& args) {
  std::optional<ChunkTokenizer> tok;
  ModelConfig config = config_from_args(args, &tok);
  const std::string out = args.require("out");
  torch::manual_seed(static_cast<uint64_t>(args.get_int("seed", 0, 0)));
  I3Model model(config);
  save_model_folder(out, model, tok ? &*tok : nullptr);
  std::cerr << "wrote " << out << ": " << config.parameter_count() << " parameters" << (tok ? "" : ", no vocabulary")
            << "\n";
  return 0;
}

// --- score and generate ------------------------------------------------------------------------

ModelFolder load_for_inference(const Args& args) {
  set_default_threads();
  ModelFolder folder = load_model_folder(args.require("model"));
  for (const auto& w : folder.warnings) std::cerr << "warning: " << w << "\n";
  if (!folder.tokenizer)
    throw std::runtime_error(args.get("model") + ": no tokenizer.json or chunk_vocab_combined.json in the folder");
  folder.model->to(parse_device(args.get("device", "cpu")));
  return folder;
}

std::vector<int64_t> encode_ids(const ChunkTokenizer& tok, const std::string& text) {
  std::vector<int64_t> ids;
  for (int32_t id : tok.encode(std::string_view(text))) ids.push_back(id);
  return ids;
}

int score(const Args& args) {
  ModelFolder folder = load_for_inference(args);
  std::vector<int64_t> ids = encode_ids(*folder.tokenizer, args.require("text"));
  const bool truncated = static_cast<int64_t>(ids.size()) > folder.config.context;
  if (truncated) ids.resize(folder.config.context);
  std::vector<double> logprobs = token_logprobs(folder.model, ids);
  double total = 0;
  for (double lp : logprobs) total += lp;
  Json out;
  out["ids"] = ids;
  out["logprobs"] = logprobs;
  out["total_logprob"] = total;
  if (!logprobs.empty()) out["perplexity"] = std::exp(-total / logprobs.size());
  out["truncated"] = truncated;
  if (args.has("json")) {
    std::cout << out.dump() << "\n";
  } else {
    std::cout << "tokens: " << ids.size() << (truncated ? " (cut to the context)" : "") << "\ntotal log-probability: " << total
              << "\n";
    if (!logprobs.empty()) std::cout << "perplexity: " << std::exp(-total / logprobs.size()) << "\n";
  }
  return 0;
}

int generate_cmd(const Args& args) {
  SamplingOptions options;
  options.max_new_tokens = args.get_int("max-new-tokens", 50, 0);
  options.temperature = args.get_double("temperature", 1.0);
  options.top_k = args.get_int("top-k", 0, 0);
  options.top_p = args.get_double("top-p", 1.0);
  options.greedy = args.has("greedy");
  options.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0));
  options.stop = args.get_all("stop");
  const std::string window = args.get("window", "half");
  if (window != "half" && window != "slide") throw UsageError("--window must be half or slide, got '" + window + "'");
  options.window = window == "half" ? Window::kHalf : Window::kSlide;
  options.incremental = !args.has("full-recompute");
  validate(options);
  ModelFolder folder = load_for_inference(args);
  std::vector<int64_t> prompt = encode_ids(*folder.tokenizer, args.require("prompt"));
  const auto start = std::chrono::steady_clock::now();
  Generation gen = generate(folder.model, *folder.tokenizer, prompt, options);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (args.has("json")) {
    Json out;
    out["prompt_ids"] = prompt;
    out["ids"] = gen.ids;
    out["text"] = gen.text;
    out["finish_reason"] = gen.finish_reason;
    out["tokens_per_sec"] = gen.ids.size() / std::max(secs, 1e-9);
    std::cout << out.dump() << "\n";
  } else {
    std::cout << gen.text << "\n";
    std::cerr << gen.ids.size() << " tokens in " << secs << " s (" << gen.ids.size() / std::max(secs, 1e-9)
              << " tokens/s), finished by " << gen.finish_reason << "\n";
  }
  return 0;
}

int prepare_demo(const Args& args) {
  const std::string out = args.get("out", "data/demo");
  DemoCorpusStats stats = prepare_demo_corpus(args.get("npm-dir", "data/npm"), out);
  std::cerr << "wrote " << out << "/sentences.txt (" << stats.sentences << " sentences) and " << out << "/brown.txt ("
            << stats.brown_texts << " texts), " << stats.bytes / 1e6 << " MB\n";
  return 0;
}

}  // namespace

std::map<std::string, cli::Handler> model_handlers() {
  return {
      {"tokenizer build", tokenizer_build},
      {"data prepare-demo", prepare_demo},
      {"tokenizer encode", tokenizer_encode},
      {"tokenizer decode", tokenizer_decode},
      {"model info", model_info},
      {"model init", model_init},
      {"score", score},
      {"generate", generate_cmd},
  };
}

}  // namespace i3
