// The plugin's one entry point: search.cc dlopens sluice-deeptune.so and asks it for DeepTune's
// factory. Everything else the plugin needs (Space, Status, …) it takes from the program.
#include "wayfinder/deeptune/deeptune.h"

extern "C" __attribute__((visibility("default"))) const sluice::wf::SearcherFactory*
sluice_wf_searcher_factory() {
  static const sluice::wf::SearcherFactory factory = sluice::wf::deeptune::make_deeptune_search;
  return &factory;
}
