# Compiler warnings and sanitizers shared by every sluice target (applied through
# sluice_compile_options, an INTERFACE library, so third-party code is not affected).
add_library(sluice_compile_options INTERFACE)
target_compile_options(sluice_compile_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wconversion -Wsign-conversion -Wdouble-promotion
  # (-Wnull-dereference is left out: g++ 12 reports false positives inside libstdc++ at -O2.)
  -Wformat=2 -Wimplicit-fallthrough
  # Designated initialisers leave fields at their defaults on purpose (KnobSpec, CommandSpec).
  -Wno-missing-field-initializers)
if(SLUICE_WERROR)
  target_compile_options(sluice_compile_options INTERFACE -Werror)
endif()

if(SLUICE_SANITIZE)
  set(_sluice_san_flags -fsanitize=${SLUICE_SANITIZE} -fno-omit-frame-pointer)
  if(SLUICE_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # g++ warns that TSan does not model std::atomic_thread_fence. The fences in sluice order
    # accesses to atomics only (Dekker-style sleep/wake), which TSan checks as atomics anyway.
    list(APPEND _sluice_san_flags -Wno-tsan)
  endif()
  if(SLUICE_SANITIZE MATCHES "undefined")
    list(APPEND _sluice_san_flags -fno-sanitize-recover=undefined)
    # Sanitizer instrumentation at -O1 makes g++ 12 report maybe-uninitialized inside libstdc++'s
    # <regex>; the release preset keeps the warning.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      list(APPEND _sluice_san_flags -Wno-maybe-uninitialized)
    endif()
  endif()
  # Sanitizers must see every translation unit, third-party headers included.
  add_compile_options(${_sluice_san_flags})
  add_link_options(${_sluice_san_flags})
endif()
