// DeepTune (the paper's §3.2): the searcher's entry point. Built into the plugin
// sluice-deeptune.so (and a static library for tests), since it links libtorch.
#pragma once

#include <memory>

#include "sluice/common/result.h"
#include "sluice/wayfinder/search.h"

namespace sluice::wf::deeptune {

Result<std::unique_ptr<Searcher>> make_deeptune_search(const Space& space,
                                                       const SearchOptions& options);

}  // namespace sluice::wf::deeptune
