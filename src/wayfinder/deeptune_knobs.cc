#include "wayfinder/deeptune_knobs.h"

namespace sluice::wf {

const FloatKnob kDeepTuneAlpha({.name = "wayfinder.deeptune_alpha",
                                .default_value = 0.5,
                                .min = 0,
                                .max = 1,
                                .stage = KnobStage::kRuntime,
                                .help = "DeepTune's exploration weight (Equation 3): 1 favours "
                                        "configurations unlike those tried, 0 uncertain ones"});
const IntKnob kDeepTunePool({.name = "wayfinder.deeptune_pool",
                             .default_value = 1000,
                             .min = 16,
                             .max = 1000000,
                             .stage = KnobStage::kRuntime,
                             .help = "candidate configurations DeepTune scores for each "
                                     "proposal"});
const FloatKnob kDeepTuneLocalShare({.name = "wayfinder.deeptune_local_share",
                                     .default_value = 0.5,
                                     .min = 0,
                                     .max = 1,
                                     .stage = KnobStage::kRuntime,
                                     .help = "share of DeepTune's candidate pool drawn as "
                                             "neighbours of the best configurations (the rest "
                                             "uniformly random)"});
const FloatKnob kDeepTuneRecombineShare(
    {.name = "wayfinder.deeptune_recombine_share",
     .default_value = 0.5,
     .min = 0,
     .max = 1,
     .stage = KnobStage::kRuntime,
     .help = "share of DeepTune's neighbour candidates made by recombining the best "
             "configurations (each parameter from one of them) and then moving one parameter; "
             "the rest move 1-3 parameters of one of the best"});
const FloatKnob kDeepTuneGuidedShare(
    {.name = "wayfinder.deeptune_guided_share",
     .default_value = 0.5,
     .min = 0,
     .max = 1,
     .stage = KnobStage::kRuntime,
     .help = "share of a neighbour's parameter choices drawn by the model's sensitivity to "
             "each parameter (the rest uniformly)"});
const FloatKnob kDeepTuneDensityShare(
    {.name = "wayfinder.deeptune_density_share",
     .default_value = 0.5,
     .min = 0,
     .max = 1,
     .stage = KnobStage::kRuntime,
     .help = "share of DeepTune's other (not neighbour) candidates drawn from per-parameter "
             "densities around the best tenth of the trials, as TPE draws from l(x); the rest "
             "uniformly random"});
const FloatKnob kDeepTuneCrashThreshold({.name = "wayfinder.deeptune_crash_threshold",
                                         .default_value = 0.5,
                                         .min = 0,
                                         .max = 1,
                                         .stage = KnobStage::kRuntime,
                                         .help = "DeepTune skips candidates whose predicted crash "
                                                 "probability is above this"});
const IntKnob kDeepTuneEpochs({.name = "wayfinder.deeptune_epochs",
                               .default_value = 10,
                               .min = 1,
                               .max = 100000,
                               .stage = KnobStage::kRuntime,
                               .help = "DeepTune training passes over the history per new "
                                       "observation (at most 10 observations' worth per update)"});
const IntKnob kDeepTuneLayers({.name = "wayfinder.deeptune_layers",
                               .default_value = 2,
                               .min = 1,
                               .max = 16,
                               .stage = KnobStage::kRuntime,
                               .help = "dense layers of DeepTune's model, each with a parallel "
                                       "RBF layer"});
const IntKnob kDeepTuneHidden({.name = "wayfinder.deeptune_hidden",
                               .default_value = 64,
                               .min = 2,
                               .max = 8192,
                               .stage = KnobStage::kRuntime,
                               .help = "width of each dense layer of DeepTune's model"});
const IntKnob kDeepTuneCentroids({.name = "wayfinder.deeptune_centroids",
                                  .default_value = 32,
                                  .min = 1,
                                  .max = 8192,
                                  .stage = KnobStage::kRuntime,
                                  .help = "RBF neurons (learned centroids) per uncertainty layer "
                                          "of DeepTune's model"});
const FloatKnob kDeepTuneDropout({.name = "wayfinder.deeptune_dropout",
                                  .default_value = 0.1,
                                  .min = 0,
                                  .max = 0.9,
                                  .stage = KnobStage::kRuntime,
                                  .help = "dropout rate after each dense layer of DeepTune's "
                                          "model while it trains"});
const FloatKnob kDeepTuneLearningRate({.name = "wayfinder.deeptune_learning_rate",
                                       .default_value = 0.01,
                                       .min = 1e-6,
                                       .max = 1,
                                       .stage = KnobStage::kRuntime,
                                       .help = "Adam learning rate of DeepTune's model"});
const FloatKnob kDeepTuneGamma({.name = "wayfinder.deeptune_gamma",
                                .default_value = 0.1,
                                .min = 1e-3,
                                .max = 100,
                                .stage = KnobStage::kRuntime,
                                .help = "RBF smoothing γ (Equation 1) on z-scored inputs; larger "
                                        "is flatter"});
const IntKnob kDeepTuneMinObservations({.name = "wayfinder.deeptune_min_observations",
                                        .default_value = 3,
                                        .min = 1,
                                        .max = 100000,
                                        .stage = KnobStage::kRuntime,
                                        .help = "observations (one of them ok) before DeepTune's "
                                                "model drives proposals; diverse random before"});
const IntKnob kDeepTuneThreads({.name = "wayfinder.deeptune_threads",
                                .default_value = 1,
                                .min = 1,
                                .max = 1024,
                                .stage = KnobStage::kRuntime,
                                .help = "libtorch threads DeepTune uses (the benchmarks being "
                                        "tuned usually share the machine)"});

const FloatKnob kDeepTuneWarmHedge(
    {.name = "wayfinder.deeptune_warm_hedge",
     .default_value = 0.5,
     .min = 0,
     .max = 1,
     .stage = KnobStage::kRuntime,
     .help = "in a warm start, the share of proposals ranked by a second model that learns from "
             "this study alone (0: every proposal by the transferred model)"});

}  // namespace sluice::wf
