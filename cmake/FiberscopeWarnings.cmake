# fiberscope_warnings(target): the project's one warning policy.
function(fiberscope_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C,CXX>:-Wall -Wextra -Wpedantic -Wshadow>
    $<$<AND:$<BOOL:${FIBERSCOPE_WERROR}>,$<COMPILE_LANGUAGE:C,CXX>>:-Werror>)
  # GCC's -Wmaybe-uninitialized gives false positives under AddressSanitizer's instrumentation (GCC's manual says
  # so; GCC 12 reports them inside <regex> and std::function). The plain build keeps the warning, -Werror included.
  if(FIBERSCOPE_SANITIZE STREQUAL "address" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C,CXX>:-Wno-maybe-uninitialized>)
  endif()
endfunction()
