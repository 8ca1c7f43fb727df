# One short fuzzing run (ctest -L fuzz): copies the checked-in seed corpus to
# a scratch directory, fuzzes for SECONDS, fails on any finding.
#   FUZZER    the fuzz_<name> executable
#   CORPUS    tests/fuzz/corpus/<name> (may not exist yet)
#   WORK_DIR  scratch directory, wiped first
#   SECONDS   -max_total_time
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus")
if(IS_DIRECTORY "${CORPUS}")
  file(GLOB seeds "${CORPUS}/*")
  if(seeds)
    file(COPY ${seeds} DESTINATION "${WORK_DIR}/corpus"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
endif()
execute_process(
  COMMAND "${FUZZER}" -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
          -print_final_stats=1 -artifact_prefix=${WORK_DIR}/ "${WORK_DIR}/corpus"
  WORKING_DIRECTORY "${WORK_DIR}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found "${WORK_DIR}/crash-*" "${WORK_DIR}/leak-*" "${WORK_DIR}/timeout-*"
       "${WORK_DIR}/oom-*" "${WORK_DIR}/slow-unit-*")
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); reproducers: ${found}\n"
                      "replay one with: ${FUZZER} <file>")
endif()
