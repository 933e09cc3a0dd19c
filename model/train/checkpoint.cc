#include "model/train/checkpoint.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "common/util/json.h"
#include "model/io/model_folder.h"
#include "model/io/safetensors.h"

namespace i3 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(); }

// Copies checkpoint weights into the model's (flat-buffer) parameters.
void load_weights(I3Model& model, const std::vector<std::pair<std::string, torch::Tensor>>& weights) {
  std::map<std::string, torch::Tensor> by_name(weights.begin(), weights.end());
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : model->state_dict()) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw std::runtime_error("no tensor " + name);
    if (it->second.sizes() != p.sizes()) throw std::runtime_error(name + " has the wrong shape for this config");
    p.copy_(it->second);
    by_name.erase(it);
  }
  if (!by_name.empty()) throw std::runtime_error("unexpected tensor " + by_name.begin()->first);
}

}  // namespace

std::string checkpoint_artifact_name(const std::string& run_uid) { return "ckpt-" + run_uid.substr(0, 8); }

void write_checkpoint(const std::string& dir, const I3Model& model, const ChunkTokenizer& tokenizer,
                      const FlatAdamW& optimizer, const TrainerState& s) {
  save_model_folder(dir, model, &tokenizer);
  safetensors::save((fs::path(dir) / "optimizer.safetensors").string(), optimizer.state());
  const json state = {{"step", s.step},
                      {"tokens_seen", s.tokens_seen},
                      {"sampler", s.sampler},
                      {"val_loss", finite_or_null(s.val_loss)},
                      {"best_val_loss", finite_or_null(s.best_val_loss)},
                      {"config", s.config},
                      {"interval", {{"loss_sum", s.interval_loss_sum}, {"updates", s.interval_updates}}},
                      {"skipped_steps", s.skipped_steps}};
  std::ofstream out((fs::path(dir) / "trainer_state.json").string());
  out << state.dump(2) << "\n";
  if (!out.flush()) throw std::runtime_error(dir + "/trainer_state.json: write failed (disk full?)");
}

TrainerState read_checkpoint(const std::string& dir, I3Model& model, FlatAdamW& optimizer, const std::string& origin) {
  try {
    load_weights(model, read_weights(dir));
    optimizer.load_state(safetensors::load((fs::path(dir) / "optimizer.safetensors").string()).tensors);
    const json j = util::read_json_file((fs::path(dir) / "trainer_state.json").string());
    TrainerState s;
    s.step = j.at("step");
    s.tokens_seen = j.at("tokens_seen");
    s.sampler = j.at("sampler");
    if (j.at("val_loss").is_number()) s.val_loss = j["val_loss"];
    if (j.at("best_val_loss").is_number()) s.best_val_loss = j["best_val_loss"];
    s.config = j.value("config", json());
    if (j.contains("interval")) {  // checkpoints before 2026-11-24 lack it: the interval restarts
      s.interval_loss_sum = j["interval"].at("loss_sum");
      s.interval_updates = j["interval"].at("updates");
    }
    s.skipped_steps = j.value("skipped_steps", int64_t{0});
    return s;
  } catch (const std::exception& e) {
    throw std::runtime_error(origin + ": " + e.what());
  }
}

}  // namespace i3
