# Fails the build when the sans-IO core (lib/core, lib/wire, and the public
# headers it exposes) includes Boost.Asio or reads a clock. Run by the
# shoal_layering target, which shoal_core depends on.
file(GLOB_RECURSE files
  "${SRC}/lib/core/*.hpp" "${SRC}/lib/core/*.cpp"
  "${SRC}/lib/wire/*.hpp" "${SRC}/lib/wire/*.cpp")
set(bad "")
foreach(f ${files})
  file(STRINGS "${f}" lines REGEX "#[ \t]*include[ \t]*[<\"](boost/asio|asio)|::now\\(\\)|<thread>")
  if(lines)
    list(APPEND bad "${f}: ${lines}")
  endif()
endforeach()
if(bad)
  string(REPLACE ";" "\n  " msg "${bad}")
  message(FATAL_ERROR "lib/core and lib/wire must not include Asio, threads or read a clock:\n  ${msg}")
endif()
