# Installs the build tree into a fresh prefix, then configures, builds and runs
# a consumer project that only knows find_package(shoal).
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${SHOAL_BUILD_DIR}" --prefix "${prefix}"
  RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
foreach(f include/shoal/version.hpp include/shoal/core.hpp include/shoal/node.hpp
          include/shoal/client/client.hpp include/shoal/client/frame.hpp lib/cmake/shoal/shoalConfig.cmake
          lib/cmake/shoal/shoalConfigVersion.cmake lib/pkgconfig/shoal.pc bin/shoald bin/shoalctl)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "installed tree lacks ${f}")
  endif()
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${CONSUMER_SRC}" -B "${WORK_DIR}/build"
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
    # a sanitizer build installs instrumented libraries: link their runtime
    "-DCMAKE_CXX_FLAGS=${CONSUMER_CXX_FLAGS}"
  RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed: ${rc}")
endif()
execute_process(COMMAND "${WORK_DIR}/build/consumer" RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message(STATUS "consumer said: ${out}")
if(rc)
  message(FATAL_ERROR "the consumer failed: ${rc}")
endif()
execute_process(COMMAND "${WORK_DIR}/build/client_consumer" "${WORK_DIR}/no-daemon.sock"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message(STATUS "client_consumer said: ${out}")
if(rc)
  message(FATAL_ERROR "the client consumer failed: ${rc}")
endif()
