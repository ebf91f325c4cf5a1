# Checks that a shared library uses the shared C++ runtime instead of carrying a copy of
# libstdc++ (a static libstdc++.a linked in): with two runtimes in one process, the first number
# the library formats into a stream crashes (cmake/CudaSetup.cmake says how one got in).
#   cmake -DNM=<nm> -DLIBRARY=<libpixelfly.so> -P no_private_cxx_runtime.cmake
execute_process(COMMAND "${NM}" -D --defined-only "${LIBRARY}"
                OUTPUT_VARIABLE symbols ERROR_VARIABLE nm_error RESULT_VARIABLE nm_result)
if(NOT nm_result EQUAL 0)
  message(FATAL_ERROR "${NM} -D could not read ${LIBRARY}: ${nm_error}")
endif()
# Symbols that only the C++ runtime itself defines: std::locale::classic(), the counter of
# std::locale::id, and std::ios_base::Init's constructor.
foreach(symbol _ZNSt6locale7classicEv _ZNSt6locale2id11_S_refcountE _ZNSt8ios_base4InitC1Ev)
  string(REGEX MATCH "[^\n]* ${symbol}(@[^\n]*)?\n" found "${symbols}")
  if(found)
    message(FATAL_ERROR "${LIBRARY} defines ${symbol}: it carries its own copy of libstdc++ "
                        "(a static libstdc++.a was linked in), where the shared libstdc++.so of the "
                        "C++ compiler was expected. Print the link line (`ninja -t commands libpixelfly.so` "
                        "in a Ninja build, CMakeFiles/pixelfly.dir/link.txt with Makefiles) and look "
                        "for a -L directory of another GCC installation ahead of the compiler's own.")
  endif()
endforeach()
message(STATUS "${LIBRARY}: no private C++ runtime")
