# shoal_set_sanitizers(target [NO_FUZZ_COVERAGE]): applies SHOAL_SANITIZE
# ("address,undefined" or "thread") to one target, compile and link. With
# SHOAL_FUZZ every target of ours is built with address,undefined, and every
# library also with libFuzzer's coverage instrumentation (fuzzer-no-link), so
# the fuzzers see inside the libraries they drive. Executables (tests, shoald,
# shoalctl, examples) and the libraries given NO_FUZZ_COVERAGE (the tests'
# own) are never linked into a fuzzer: instrumenting them for coverage only
# cost compile time (about a tenth) and made the tests slower.
function(shoal_set_sanitizers target)
  cmake_parse_arguments(S "NO_FUZZ_COVERAGE" "" "" ${ARGN})
  set(_san "${SHOAL_SANITIZE}")
  if(SHOAL_FUZZ)
    get_target_property(_type ${target} TYPE)
    if(S_NO_FUZZ_COVERAGE OR _type STREQUAL "EXECUTABLE")
      set(_san "address,undefined")
    else()
      set(_san "fuzzer-no-link,address,undefined")
    endif()
  endif()
  if(_san)
    target_compile_options(${target} PRIVATE -fsanitize=${_san}
      -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${_san})
  endif()
  if(SHOAL_SANITIZE STREQUAL "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC warns (-Wtsan) wherever Asio's handler invocation inlines its
    # std::atomic_thread_fence (detail/std_fenced_block.hpp), which TSan does
    # not model. Our own code uses no fence (checked below), so only Asio's
    # are silenced.
    target_compile_options(${target} PRIVATE -Wno-tsan)
  endif()
endfunction()

if(SHOAL_SANITIZE STREQUAL "thread")
  file(GLOB_RECURSE _sources "${PROJECT_SOURCE_DIR}/lib/*.[ch]pp" "${PROJECT_SOURCE_DIR}/include/*.hpp"
       "${PROJECT_SOURCE_DIR}/daemon/*.[ch]pp" "${PROJECT_SOURCE_DIR}/tests/*.[ch]pp")
  foreach(_f ${_sources})
    file(STRINGS "${_f}" _fence REGEX "atomic_thread_fence")
    if(_fence)
      message(FATAL_ERROR "${_f} uses atomic_thread_fence, which ThreadSanitizer does not model; "
                          "the -Wno-tsan in cmake/shoal_sanitize.cmake would hide it")
    endif()
  endforeach()
endif()

if(SHOAL_SANITIZE AND NOT SHOAL_SANITIZE MATCHES "^(address,undefined|undefined,address|address|undefined|thread)$")
  message(FATAL_ERROR "SHOAL_SANITIZE must be 'address,undefined' or 'thread', got '${SHOAL_SANITIZE}'")
endif()

# What a sanitizer report does to a test: it fails it. ASan and TSan stop at
# the first report (halt_on_error), UBSan aborts (-fno-sanitize-recover=all
# above) and prints the stack; LeakSanitizer fails the process at exit. The
# tests get these through their ENVIRONMENT property (tests/CMakeLists.txt).
set(SHOAL_SANITIZER_ENV "")
if(SHOAL_SANITIZE MATCHES "address|undefined")
  list(APPEND SHOAL_SANITIZER_ENV
    "ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1"
    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1")
elseif(SHOAL_SANITIZE STREQUAL "thread")
  list(APPEND SHOAL_SANITIZER_ENV
    "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")
endif()
