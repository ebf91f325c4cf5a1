# Enables CUDA when nvcc is present (also on machines with no GPU, so that every kernel is
# compiled and linked in CI) and builds the torch-free CUDA kernels for Hopper (sm_90a).
include(CheckLanguage)
check_language(CUDA)
set(PIXELFLY_HAVE_CUDA OFF)
if(CMAKE_CUDA_COMPILER)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90a)
  endif()
  enable_language(CUDA)
  # CMake puts the CUDA toolchain's implicit link directories on the C++ link of every target
  # with CUDA objects. Where nvcc's host compiler lives in another GCC installation than the C++
  # compiler (an image with CUDAHOSTCXX=/opt/gcc/bin/g++ beside /usr/bin/g++), those directories
  # come first and the driver's own -lstdc++ finds that installation's static libstdc++.a:
  # libpixelfly.so then carries a second C++ runtime, and a process that already has the shared
  # one (python3 with torch) crashes the first time the library formats a number into an error
  # message. The CUDA objects need only the toolkit's libraries; the C++ runtime is the C++
  # compiler's (test: Build.LibraryHasNoPrivateCxxRuntime).
  set(pixelfly_cuda_link_directories)
  foreach(dir IN LISTS CMAKE_CUDA_IMPLICIT_LINK_DIRECTORIES)
    cmake_path(IS_PREFIX CMAKE_CUDA_COMPILER_TOOLKIT_ROOT "${dir}" NORMALIZE in_toolkit)
    if(in_toolkit OR dir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
      list(APPEND pixelfly_cuda_link_directories "${dir}")
    endif()
  endforeach()
  set(CMAKE_CUDA_IMPLICIT_LINK_DIRECTORIES ${pixelfly_cuda_link_directories})
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(PIXELFLY_HAVE_CUDA ON)
  add_library(pixelfly_kernels_cuda STATIC src/kernels/cuda/block_sparse_cuda.cu
                                           src/kernels/cuda/block_sparse_wgmma.cu
                                           src/kernels/cuda/low_rank_gradients.cu
                                           src/kernels/cuda/parameter_gradients.cu
                                           src/kernels/cuda/tensor_map.cu)
  target_include_directories(pixelfly_kernels_cuda PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR}/include)
  set_target_properties(pixelfly_kernels_cuda PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)
  # The warpgroup-MMA kernels exist only in an sm_90a build (LibTorch's CUDA config turns
  # TORCH_CUDA_ARCH_LIST into -gencode flags); other targets get the CUDA-core kernels.
  if(CMAKE_CUDA_FLAGS MATCHES "compute_90a" OR "90a" IN_LIST CMAKE_CUDA_ARCHITECTURES)
    target_compile_definitions(pixelfly_kernels_cuda PRIVATE PIXELFLY_CUDA_SM90A)
  endif()
endif()
message(STATUS "pixelfly: CUDA kernels ${PIXELFLY_HAVE_CUDA}")
