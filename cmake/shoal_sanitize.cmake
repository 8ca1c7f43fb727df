# shoal_set_sanitizers(target): applies SHOAL_SANITIZE ("address,undefined" or
# "thread") to one target, compile and link.
function(shoal_set_sanitizers target)
  if(SHOAL_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${SHOAL_SANITIZE}
      -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${SHOAL_SANITIZE})
  endif()
endfunction()

if(SHOAL_SANITIZE AND NOT SHOAL_SANITIZE MATCHES "^(address,undefined|undefined,address|address|undefined|thread)$")
  message(FATAL_ERROR "SHOAL_SANITIZE must be 'address,undefined' or 'thread', got '${SHOAL_SANITIZE}'")
endif()
