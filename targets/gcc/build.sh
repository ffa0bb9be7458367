#!/usr/bin/env bash
# Compiles one workload of the compiler-flag targets with the flags a trial's values name:
#   build.sh SOURCE.c name=value...   (in the trial's build directory; writes ./prog)
# The names are the parameters of targets/gcc-dot.yaml and targets/gcc-norms.yaml; wayfinder
# runs this once per distinct set of values and caches the binary.
set -euo pipefail
src=$1
shift
flags=()
for kv in "$@"; do
  k=${kv%%=*}
  v=${kv#*=}
  case $k in
    opt) flags+=("-$v") ;;
    march) flags+=("-march=$v") ;;
    fast_math) [[ $v == true ]] && flags+=(-ffast-math) ;;
    tree_vectorize)
      case $v in on) flags+=(-ftree-vectorize) ;; off) flags+=(-fno-tree-vectorize) ;; esac ;;
    vect_cost_model) [[ $v != default ]] && flags+=("-fvect-cost-model=$v") ;;
    unroll_loops) [[ $v == true ]] && flags+=(-funroll-loops) ;;
    max_unroll_times) [[ $v != default ]] && flags+=(--param "max-unroll-times=$v") ;;
    prefetch_loop_arrays) [[ $v == true ]] && flags+=(-fprefetch-loop-arrays) ;;
    omit_frame_pointer) [[ $v == false ]] && flags+=(-fno-omit-frame-pointer) ;;
    stack_protector)
      case $v in default) ;; none) flags+=(-fno-stack-protector) ;; *) flags+=("-f$v") ;; esac ;;
    pic) [[ $v == true ]] && flags+=(-fPIC) ;;
    plt) [[ $v == false ]] && flags+=(-fno-plt) ;;
    semantic_interposition) [[ $v == false ]] && flags+=(-fno-semantic-interposition) ;;
    align_loops) [[ $v != 0 ]] && flags+=("-falign-loops=$v") ;;
    inline_limit) [[ $v != default ]] && flags+=("-finline-limit=$v") ;;
    ipa_pta) [[ $v == true ]] && flags+=(-fipa-pta) ;;
    wrapv) [[ $v == true ]] && flags+=(-fwrapv) ;;
    tracer) [[ $v == true ]] && flags+=(-ftracer) ;;
    debug_info) [[ $v == true ]] && flags+=(-g) ;;
    cf_protection) [[ $v != default ]] && flags+=("-fcf-protection=$v") ;;
    *) echo "build.sh: unknown parameter $k" >&2; exit 2 ;;
  esac
done
echo "gcc ${flags[*]}"
exec gcc "${flags[@]}" -o prog "$src" -lm
