# libFuzzer targets (tests/fuzz). SHOAL_FUZZ=ON needs clang: every target of
# ours then carries coverage instrumentation (see shoal_set_sanitizers), and
# shoal_fuzz_target() adds one fuzzer with its short ctest run.
if(SHOAL_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "SHOAL_FUZZ needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++, got ${CMAKE_CXX_COMPILER_ID}")
  endif()
  if(SHOAL_SANITIZE AND NOT SHOAL_SANITIZE MATCHES "^(address,undefined|undefined,address)$")
    message(FATAL_ERROR "SHOAL_FUZZ builds with address,undefined; SHOAL_SANITIZE=${SHOAL_SANITIZE} conflicts")
  endif()
  if(NOT SHOAL_FUZZ_SECONDS MATCHES "^[0-9]+$" OR SHOAL_FUZZ_SECONDS EQUAL 0)
    message(FATAL_ERROR "SHOAL_FUZZ_SECONDS must be a positive number of seconds, got '${SHOAL_FUZZ_SECONDS}'")
  endif()
  # Builds every fuzzer: cmake --build <dir> --target shoal_fuzz
  add_custom_target(shoal_fuzz)
endif()

# shoal_fuzz_target(name source [libs...])
#
# With SHOAL_FUZZ=ON (a no-op otherwise, so callers need no guard), builds
# fuzz_<name> from `source` (which defines LLVMFuzzerTestOneInput), linked
# with `libs`, with lib/ and tests/fuzz on its include path, and registers the ctest
# fuzz_<name> (label fuzz): SHOAL_FUZZ_SECONDS of fuzzing that starts from a
# scratch copy of tests/fuzz/corpus/<name>/ (the checked-in corpus is never
# written to). Any crash, leak, sanitizer report or input slower than 10 s
# fails the test and leaves the reproducer in the run directory.
# The aggregate target shoal_fuzz builds every fuzzer.
function(shoal_fuzz_target name source)
  if(NOT SHOAL_FUZZ)
    return()
  endif()
  set(exe fuzz_${name})
  add_executable(${exe} ${source})
  target_link_libraries(${exe} PRIVATE ${ARGN})
  target_include_directories(${exe} PRIVATE ${PROJECT_SOURCE_DIR}/lib ${PROJECT_SOURCE_DIR}/tests/fuzz)
  shoal_set_warnings(${exe})
  target_compile_options(${exe} PRIVATE -fsanitize=fuzzer,address,undefined
    -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(${exe} PRIVATE -fsanitize=fuzzer,address,undefined)
  add_dependencies(shoal_fuzz ${exe})
  add_test(NAME ${exe}
    COMMAND ${CMAKE_COMMAND}
      -DFUZZER=$<TARGET_FILE:${exe}>
      -DCORPUS=${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name}
      -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/runs/${name}
      -DSECONDS=${SHOAL_FUZZ_SECONDS}
      -P ${PROJECT_SOURCE_DIR}/cmake/run_fuzz.cmake)
  math(EXPR _timeout "${SHOAL_FUZZ_SECONDS} + 120")
  set_tests_properties(${exe} PROPERTIES LABELS fuzz TIMEOUT ${_timeout})
endfunction()
