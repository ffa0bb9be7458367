// DeepTune's knobs. Declared in the wayfinder library, not in the plugin, so that `sluice knobs`
// lists them whether or not the plugin was ever loaded. The plugin reads them once, when a
// searcher is created (src/wayfinder/deeptune/searcher.cc, hyper_from_knobs()).
#pragma once

#include "sluice/common/knobs.h"

namespace sluice::wf {

extern const FloatKnob kDeepTuneAlpha;        // Equation 3's α
extern const IntKnob kDeepTunePool;           // candidates scored per proposal
extern const FloatKnob kDeepTuneGuidedShare;  // of the neighbours' moves: where the model looks
extern const FloatKnob kDeepTuneLocalShare;   // share of the pool that are neighbours of the best
extern const FloatKnob kDeepTuneRecombineShare;  // of those: crossovers of the best, mutated
extern const FloatKnob kDeepTuneDensityShare;    // of the rest: drawn around the best (TPE's l(x))
extern const FloatKnob kDeepTuneCrashThreshold;  // candidates predicted likelier to crash drop out
extern const IntKnob kDeepTuneEpochs;            // training passes per new observation
extern const IntKnob kDeepTuneLayers;            // dense (and parallel RBF) layers
extern const IntKnob kDeepTuneHidden;            // width of each dense layer
extern const IntKnob kDeepTuneCentroids;         // RBF neurons per uncertainty layer
extern const FloatKnob kDeepTuneDropout;
extern const FloatKnob kDeepTuneLearningRate;
extern const FloatKnob kDeepTuneGamma;          // Equation 1's γ
extern const IntKnob kDeepTuneMinObservations;  // below this, proposals are diverse random ones
extern const IntKnob kDeepTuneThreads;          // libtorch intra-op threads
extern const FloatKnob kDeepTuneWarmHedge;      // warm start: share ranked by a model of its own

}  // namespace sluice::wf
