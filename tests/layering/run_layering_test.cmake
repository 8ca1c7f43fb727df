# The layering check catches what it promises: each case writes a one-file
# tree with one include against the layers and expects check_layering.cmake
# to fail naming the rule; the clean file of each case must pass.
#   cmake -DCHECK=<check_layering.cmake> -DWORK=<scratch dir> -P run_layering_test.cmake
set(cases
  "lib/wire/x.cpp|#include \"core/core_impl.hpp\"|wire is below the core"
  "lib/wire/x.cpp|#include <shoal/core.hpp>|wire is below the core"
  "lib/core/x.cpp|#include \"io/runtime.hpp\"|core is below io and sim"
  "lib/core/x.cpp|auto t = std::chrono::steady_clock::now()|core is sans-IO"
  "lib/core/x.cpp|#include <boost/asio/io_context.hpp>|core is sans-IO"
  "lib/io/x.cpp|#include \"sim/network.hpp\"|io and sim do not use each other"
  "lib/sim/x.cpp|#include <shoal/node.hpp>|io and sim do not use each other"
  "lib/types/x.cpp|#include \"wire/codec.hpp\"|types use nothing but"
  "daemon/x.cpp|#include \"core/core_impl.hpp\"|the daemon uses public headers only"
  "include/shoal/x.hpp|#include \"core/rng.hpp\"|public headers include only public headers")
set(n 0)
foreach(c ${cases})
  string(REPLACE "|" ";" parts "${c}")
  list(GET parts 0 file)
  list(GET parts 1 line)
  list(GET parts 2 rule)
  math(EXPR n "${n} + 1")
  set(tree "${WORK}/case${n}")
  file(REMOVE_RECURSE "${tree}")
  file(WRITE "${tree}/${file}" "#include <vector>\n${line}\n")
  execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${tree} -P ${CHECK}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    message(FATAL_ERROR "not caught: ${file}: ${line}")
  endif()
  string(FIND "${err}" "${rule}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "caught with the wrong rule: ${file}: ${line}\n${err}")
  endif()
  file(WRITE "${tree}/${file}" "#include <vector>\n#include <shoal/address.hpp>\n")
  execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${tree} -P ${CHECK} RESULT_VARIABLE rc
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "a clean ${file} was refused:\n${err}")
  endif()
endforeach()
message(STATUS "layering: ${n} violations caught, each clean variant passed")
