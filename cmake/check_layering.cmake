# Fails when an #include goes against the layers of docs/design.md:
#
#   types  <-  wire  <-  core  <-  io, sim  <-  daemon
#
# (an arrow points from a layer to one it may use). Checked per directory:
#   lib/types   public value types only (address, errc, member, enum names)
#   lib/wire    no core, io or sim: neither their internal headers nor the
#               facades <shoal/core.hpp>, <shoal/node.hpp>, <shoal/sim.hpp>
#   lib/core    no io or sim; and sans-IO: no Asio, no threads, no clock
#   lib/io      no sim
#   lib/sim     no io, no Asio
#   daemon      public headers only (no lib/ internals)
#   include     public headers never include internals
# Run by the shoal_layering target (every library depends on it) and by the
# `layering` tests, one of which checks a tree with a deliberate violation.
#   cmake -DSRC=<source dir> -P check_layering.cmake
if(NOT SRC)
  message(FATAL_ERROR "usage: cmake -DSRC=<source dir> -P check_layering.cmake")
endif()

set(internal "core|wire|io|sim|types")
set(bad "")

# check(<glob dir> <regex of forbidden lines> <why>)
function(check dir pattern why)
  file(GLOB_RECURSE files "${SRC}/${dir}/*.hpp" "${SRC}/${dir}/*.cpp" "${SRC}/${dir}/*.h")
  foreach(f ${files})
    file(STRINGS "${f}" lines REGEX "${pattern}")
    if(lines)
      file(RELATIVE_PATH rel "${SRC}" "${f}")
      list(APPEND bad "${rel}: ${why}: ${lines}")
    endif()
  endforeach()
  set(bad "${bad}" PARENT_SCOPE)
endfunction()

set(inc "^[ \t]*#[ \t]*include[ \t]*")
check(lib/types "${inc}(\"(${internal})/|<shoal/(core|node|sim|config)\\.hpp>)"
      "types use nothing but the public value types")
check(lib/wire "${inc}(\"(core|io|sim)/|<shoal/(core|node|sim)\\.hpp>)"
      "wire is below the core")
check(lib/core "${inc}(\"(io|sim)/|<shoal/(node|sim)\\.hpp>)"
      "core is below io and sim")
check(lib/core "${inc}[<\"](boost/asio|asio|thread)|::now\\(\\)|<thread>"
      "core is sans-IO: no Asio, threads or clock")
check(lib/wire "${inc}[<\"](boost/asio|asio|thread)|::now\\(\\)|<thread>"
      "wire is sans-IO: no Asio, threads or clock")
check(lib/io "${inc}(\"sim/|<shoal/sim\\.hpp>)" "io and sim do not use each other")
check(lib/sim "${inc}(\"io/|<shoal/node\\.hpp>|[<\"](boost/asio|asio))"
      "io and sim do not use each other")
check(daemon "${inc}\"(${internal}|lib)/" "the daemon uses public headers only")
check(include "${inc}\"" "public headers include only public headers")

if(bad)
  string(REPLACE ";" "\n  " msg "${bad}")
  message(FATAL_ERROR "include against the layers (docs/design.md):\n  ${msg}")
endif()
