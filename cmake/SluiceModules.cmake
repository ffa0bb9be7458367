# sluice's module layers. A module may link to, and include the public headers of, only modules
# on a lower layer. sluice_add_module() refuses any other dependency at configure time, and the
# `layering` test (tools/check_layering.py) refuses an #include that breaks the rule.
#
#   layer 0  common
#   layer 1  oqueue                        the data plane every other module talks through
#   layer 2  para                          the partitioned runtime (its messages travel on oqueues)
#   layer 3  zicio                         ingestion channels running on para
#   layer 4  dbos, prefetch                OS services kept in SQL, prefetch policies
#   layer 5  wayfinder                     configuration search (keeps its studies in dbos)
#   layer 6  cli, integrations             programs that put the modules together
set(SLUICE_LAYER_common 0)
set(SLUICE_LAYER_oqueue 1)
set(SLUICE_LAYER_para 2)
set(SLUICE_LAYER_zicio 3)
set(SLUICE_LAYER_dbos 4)
set(SLUICE_LAYER_prefetch 4)
set(SLUICE_LAYER_wayfinder 5)
set(SLUICE_LAYER_cli 6)

set(SLUICE_SOURCE_DIR ${CMAKE_CURRENT_LIST_DIR}/..)

# sluice_add_module(<name> SOURCES <files...> [DEPS <modules...>] [LIBS <third-party targets...>])
#
# Creates the static library sluice_<name> (alias sluice::<name>) whose public headers are
# include/sluice/<name>/. DEPS names other sluice modules; each must sit on a lower layer.
function(sluice_add_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LIBS" ${ARGN})
  if(NOT DEFINED SLUICE_LAYER_${name})
    message(FATAL_ERROR "sluice module '${name}' has no layer: add it to cmake/SluiceModules.cmake")
  endif()
  set(layer ${SLUICE_LAYER_${name}})
  set(dep_targets)
  foreach(dep IN LISTS ARG_DEPS)
    if(NOT DEFINED SLUICE_LAYER_${dep})
      message(FATAL_ERROR "module '${name}' depends on unknown module '${dep}'")
    endif()
    if(NOT SLUICE_LAYER_${dep} LESS layer)
      message(FATAL_ERROR "module '${name}' (layer ${layer}) may not depend on '${dep}' "
                          "(layer ${SLUICE_LAYER_${dep}}): dependencies point down only")
    endif()
    list(APPEND dep_targets sluice::${dep})
  endforeach()

  if(ARG_SOURCES)
    add_library(sluice_${name} STATIC ${ARG_SOURCES})
    target_include_directories(sluice_${name}
      PUBLIC $<BUILD_INTERFACE:${SLUICE_SOURCE_DIR}/include>
      PRIVATE ${SLUICE_SOURCE_DIR}/src)
    target_link_libraries(sluice_${name} PUBLIC ${dep_targets} ${ARG_LIBS}
                                         PRIVATE sluice_compile_options)
  else()
    add_library(sluice_${name} INTERFACE)
    target_include_directories(sluice_${name} INTERFACE $<BUILD_INTERFACE:${SLUICE_SOURCE_DIR}/include>)
    target_link_libraries(sluice_${name} INTERFACE ${dep_targets} ${ARG_LIBS})
  endif()
  add_library(sluice::${name} ALIAS sluice_${name})
  set_property(GLOBAL APPEND PROPERTY SLUICE_MODULES ${name})

  # Every public header must compile on its own: one generated translation unit per header.
  file(GLOB_RECURSE headers RELATIVE ${SLUICE_SOURCE_DIR}/include
       CONFIGURE_DEPENDS ${SLUICE_SOURCE_DIR}/include/sluice/${name}/*.h)
  set(checks)
  foreach(header IN LISTS headers)
    string(MAKE_C_IDENTIFIER ${header} id)
    set(tu ${CMAKE_CURRENT_BINARY_DIR}/header_check/${id}.cc)
    file(CONFIGURE OUTPUT ${tu} CONTENT "#include \"${header}\"  // must compile alone\n")
    list(APPEND checks ${tu})
  endforeach()
  if(checks)
    add_library(sluice_${name}_header_check OBJECT ${checks})
    target_link_libraries(sluice_${name}_header_check PRIVATE sluice::${name} sluice_compile_options)
  endif()
endfunction()

# sluice_add_cli(SOURCES <files...> [LIBS <targets...>])
#
# Adds a module's subcommands (files that use SLUICE_REGISTER_COMMAND / SLUICE_REGISTER_DEMO_STEP)
# to the `sluice` program. They are compiled into the program itself, so their registrations are
# never dropped by the linker.
function(sluice_add_cli)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  foreach(src IN LISTS ARG_SOURCES)
    get_filename_component(abs ${src} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    set_property(GLOBAL APPEND PROPERTY SLUICE_CLI_SOURCES ${abs})
  endforeach()
  set_property(GLOBAL APPEND PROPERTY SLUICE_CLI_LIBS ${ARG_LIBS})
endfunction()

# sluice_add_test(<name> SOURCES <files...> [LIBS <targets...>] [LABELS <labels...>] [TIMEOUT s])
#
# A GoogleTest executable whose tests ctest discovers one by one. Labels: unit (fast, run on every
# change), stress (many threads, long), server (starts a database server itself).
function(sluice_add_test name)
  if(NOT SLUICE_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${SLUICE_SOURCE_DIR}/src)
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main
                                        sluice_compile_options)
  gtest_discover_tests(${name}
    DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
endfunction()

# sluice_add_benchmark(<name> SOURCES <files...> [LIBS <targets...>])
function(sluice_add_benchmark name)
  if(NOT SLUICE_BUILD_BENCH)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${SLUICE_SOURCE_DIR}/src ${SLUICE_SOURCE_DIR}/bench)
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} benchmark::benchmark sluice_compile_options)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
endfunction()

function(sluice_finalize)
  get_property(modules GLOBAL PROPERTY SLUICE_MODULES)
  message(STATUS "sluice modules: ${modules}")
endfunction()
