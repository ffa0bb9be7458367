// The model file and transfer learning (§3.3).
//
// Format: the line "sluice-deeptune-model 1", a line with the byte length of a JSON document,
// the JSON document (the space: encoded column names with their z-score statistics, the
// parameters' names, types, ranges and values; the objective's normalization; the
// hyper-parameters; and the list of tensors with their shapes), then every tensor's float32
// values in that order, row-major, in native byte order (little-endian on every machine sluice
// builds for).
//
// Loading into a space is transfer learning: an input column is matched by its encoded name (the
// parameter's name, and the value for a one-hot column). A matched column keeps its first-layer
// weights and RBF centroid coordinates, re-expressed for the new column's z-score statistics so
// that the layer computes the same function of the raw encoding; a new column keeps its fresh
// initialization; a column the new space lacks is dropped (as if held at its mean). Deeper
// tensors copy when the name and shape match (the same layers/hidden/centroids knobs).
#include <fmt/format.h>
#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "wayfinder/deeptune/searcher.h"

namespace sluice::wf::deeptune {
namespace {

constexpr std::string_view kMagic = "sluice-deeptune-model 1";

nlohmann::json space_json(const Space& space) {
  nlohmann::json params = nlohmann::json::array();
  for (const Parameter& p : space.parameters()) {
    if (p.fixed)
      continue;
    params.push_back({{"name", p.name},
                      {"type", std::string(param_type_name(p.type))},
                      {"min", p.min},
                      {"max", p.max},
                      {"log_scale", p.log_scale},
                      {"values", p.values}});
  }
  return params;
}

struct Saved {
  nlohmann::json meta;
  std::map<std::string, torch::Tensor> tensors;
};

Result<Saved> read_model_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return not_found(fmt::format("cannot open DeepTune model {}: {}", path, std::strerror(errno)));
  }
  const auto bad = [&](std::string_view why) {
    return data_loss(fmt::format(
        "{} is not a usable DeepTune model ({}); pass a file written by a deeptune study's "
        "model_out",
        path, why));
  };
  std::string magic, length_line;
  if (!std::getline(in, magic) || magic != kMagic)
    return bad("it does not start with the DeepTune model header");
  if (!std::getline(in, length_line))
    return bad("truncated header");
  size_t length = 0;
  try {
    length = std::stoul(length_line);
  } catch (const std::exception&) {
    return bad("bad header length");
  }
  if (length > (size_t{1} << 30))
    return bad("header too large");
  std::string text(length, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(length)))
    return bad("truncated header");
  Saved s;
  try {
    s.meta = nlohmann::json::parse(text);
    for (const auto& t : s.meta.at("tensors")) {
      std::vector<int64_t> shape = t.at("shape").get<std::vector<int64_t>>();
      int64_t numel = 1;
      for (int64_t d : shape) {
        if (d < 0 || d > (int64_t{1} << 24))
          return bad("a tensor has an impossible shape");
        numel *= d;
      }
      if (numel > (int64_t{1} << 28))
        return bad("a tensor is too large");
      torch::Tensor v = torch::empty(shape, torch::kFloat32);
      if (!in.read(reinterpret_cast<char*>(v.data_ptr<float>()),
                   static_cast<std::streamsize>(numel * 4))) {
        return bad(fmt::format("truncated in tensor {}", t.at("name").get<std::string>()));
      }
      s.tensors[t.at("name").get<std::string>()] = v;
    }
    if (in.peek() != std::char_traits<char>::eof())
      return bad("trailing bytes after the last tensor");
    const auto columns = s.meta.at("columns").get<std::vector<std::string>>();
    if (s.meta.at("mean").size() != columns.size() || s.meta.at("stddev").size() != columns.size())
      return bad("column statistics do not match the columns");
    for (const char* name : {"dense0.weight", "dense0.bias", "rbf0_centroids"}) {
      if (!s.tensors.contains(name))
        return bad(fmt::format("tensor {} is missing", name));
    }
    const torch::Tensor& w = s.tensors.at("dense0.weight");
    const torch::Tensor& c = s.tensors.at("rbf0_centroids");
    if (w.dim() != 2 || c.dim() != 2 || w.size(1) != static_cast<int64_t>(columns.size()) ||
        c.size(1) != static_cast<int64_t>(columns.size()) ||
        s.tensors.at("dense0.bias").size(0) != w.size(0)) {
      return bad("the first layer's shape does not match its columns");
    }
  } catch (const std::exception& e) {
    return bad(e.what());
  }
  return s;
}

}  // namespace

void DeepTuneSearch::save_unchecked(const std::string& path) {
  update();
  nlohmann::json meta;
  meta["format"] = "sluice-deeptune-model";
  meta["version"] = 1;
  meta["columns"] = columns_.names;
  meta["mean"] = columns_.mean;
  meta["stddev"] = columns_.stddev;
  meta["parameters"] = space_json(space_);
  meta["objective"] = {{"mean", y_mean_}, {"std", y_std_}};
  meta["observations"] = trained_ ? trained_rows_ : 0;
  meta["trained"] = trained_ || warm_;
  // Where this study did best (a warm start from it draws around them), by parameter name; a
  // warm study saved before it has ok trials of its own passes on what it carried.
  nlohmann::json carried = nlohmann::json::array();
  if (!top_.empty()) {
    for (const auto& [objective, config] : top_)
      carried.push_back(config);
  } else {
    for (const Configuration& config : carried_)
      carried.push_back(config);
  }
  meta["carried"] = carried;
  const ModelOptions& m = hyper_.model;
  meta["hyper"] = {{"layers", m.layers},       {"hidden", m.hidden},
                   {"centroids", m.centroids}, {"dropout", m.dropout},
                   {"gamma", m.gamma},         {"learning_rate", hyper_.learning_rate},
                   {"epochs", hyper_.epochs},  {"pool", hyper_.pool},
                   {"alpha", hyper_.alpha},    {"crash_threshold", hyper_.crash_threshold}};
  const auto tensors = learner_->model()->named_tensors();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, t] : tensors)
    list.push_back({{"name", name}, {"shape", t.sizes().vec()}});
  meta["tensors"] = list;
  const std::string text = meta.dump();

  const std::filesystem::path target(path);
  if (target.has_parent_path())
    std::filesystem::create_directories(target.parent_path());
  // Written aside and renamed, so a crash never leaves a half model where a study looks for one.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << kMagic << '\n' << text.size() << '\n' << text;
    for (const auto& [name, t] : tensors) {
      const torch::Tensor c = t.detach().to(torch::kFloat32).contiguous();
      out.write(reinterpret_cast<const char*>(c.data_ptr<float>()),
                static_cast<std::streamsize>(c.numel() * 4));
    }
    out.flush();
    if (!out)
      throw std::runtime_error(fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
  }
  std::filesystem::rename(tmp, path);
}

Status DeepTuneSearch::save_model(const std::string& path) {
  // Training is lazy: a searcher saved right after replaying a history (a resumed study with
  // nothing left to run) has observed every trial but trained on none of them yet.
  SLUICE_RETURN_IF_ERROR(train());
  try {
    save_unchecked(path);
    return Status();
  } catch (const std::exception& e) {
    return io_error(fmt::format("deeptune: cannot save the model to {}: {}", path, e.what()));
  }
}

Status DeepTuneSearch::load_model(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(Saved saved, read_model_file(path));
  try {
    const auto old_names = saved.meta.at("columns").get<std::vector<std::string>>();
    const auto old_mean = saved.meta.at("mean").get<std::vector<double>>();
    const auto old_std = saved.meta.at("stddev").get<std::vector<double>>();
    std::map<std::string, size_t> old_index;
    for (size_t j = 0; j < old_names.size(); ++j)
      old_index[old_names[j]] = j;

    torch::NoGradGuard no_grad;
    DtmImpl& model = *learner_->model();
    const torch::Tensor w_old = saved.tensors.at("dense0.weight");
    const torch::Tensor b_old = saved.tensors.at("dense0.bias");
    const torch::Tensor c_old = saved.tensors.at("rbf0_centroids");
    torch::Tensor& w = model.dense(0)->weight;
    torch::Tensor& b = model.dense(0)->bias;
    torch::Tensor& c = model.centroids(0);
    const bool copy_dense = w_old.size(0) == w.size(0);
    const bool copy_rbf = c_old.size(0) == c.size(0);
    torch::Tensor bias = b_old.clone();
    for (size_t j = 0; j < columns_.size(); ++j) {
      auto it = old_index.find(columns_.names[j]);
      if (it == old_index.end())
        continue;
      const auto jn = static_cast<int64_t>(j);
      const auto jo = static_cast<int64_t>(it->second);
      const double mo = old_mean[it->second], so = old_std[it->second];
      const double mn = columns_.mean[j], sn = columns_.stddev[j];
      // w_o·(x - μ_o)/σ_o = w_n·(x - μ_n)/σ_n + Δb with w_n = w_o·σ_n/σ_o,
      // Δb = w_o·(μ_n - μ_o)/σ_o.
      if (copy_dense) {
        w.select(1, jn).copy_(w_old.select(1, jo) * (sn / so));
        bias += w_old.select(1, jo) * ((mn - mo) / so);
      }
      // A centroid coordinate is a point of the raw encoding: μ_o + c·σ_o, re-z-scored.
      if (copy_rbf)
        c.select(1, jn).copy_((mo + c_old.select(1, jo) * so - mn) / sn);
    }
    if (copy_dense)
      b.copy_(bias);
    for (auto& [name, t] : model.named_tensors()) {
      if (name == "dense0.weight" || name == "dense0.bias" || name == "rbf0_centroids")
        continue;
      auto it = saved.tensors.find(name);
      if (it != saved.tensors.end() && it->second.sizes() == t.sizes())
        t.copy_(it->second);
    }
    learner_->reset_optimizer();
    warm_ = saved.meta.value("trained", false);
    if (warm_ && hyper_.warm_hedge > 0) {
      // Initialized as this study's model would have been without the transfer.
      torch::manual_seed(seed_);
      own_ = std::make_unique<Learner>(hyper_.model, hyper_.learning_rate);
    }
    // The carried configurations, by name: a parameter this space shares takes the saved value
    // when it is valid here, any other its default (pinned ones their fixed value). Models
    // saved before configurations were carried have none.
    carried_.clear();
    std::set<uint64_t> kept;
    for (const auto& saved_config : saved.meta.value("carried", nlohmann::json::array())) {
      Configuration mapped = space_.default_configuration();
      size_t shared = 0;
      for (const Parameter& p : space_.parameters()) {
        auto it = saved_config.find(p.name);
        if (p.fixed || it == saved_config.end() || !it->is_string())
          continue;
        if (Result<std::string> v = canonical_value(p, it->get<std::string>()); v.is_ok()) {
          mapped[p.name] = *v;
          ++shared;
        }
      }
      if (shared > 0 && kept.insert(configuration_hash(mapped)).second)
        carried_.push_back(std::move(mapped));
    }
    y_mean_ = saved.meta.at("objective").value("mean", 0.0);
    y_std_ = saved.meta.at("objective").value("std", 1.0);
    return Status();
  } catch (const std::exception& e) {
    return data_loss(fmt::format("{} is not a usable DeepTune model ({})", path, e.what()));
  }
}

}  // namespace sluice::wf::deeptune
