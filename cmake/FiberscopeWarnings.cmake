# fiberscope_warnings(target): the project's one warning policy.
function(fiberscope_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C,CXX>:-Wall -Wextra -Wpedantic -Wshadow>
    $<$<AND:$<BOOL:${FIBERSCOPE_WERROR}>,$<COMPILE_LANGUAGE:C,CXX>>:-Werror>)
endfunction()
