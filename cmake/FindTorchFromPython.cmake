# Finds LibTorch from the Python torch package (pip install torch==2.11.0), so that the same
# CMake builds against whatever torch the machine's python3 has, CPU or CUDA.
if(NOT Torch_DIR AND NOT DEFINED ENV{Torch_DIR})
  find_package(Python3 COMPONENTS Interpreter REQUIRED)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -W ignore -c "import torch, sys; sys.stdout.write(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE PIXELFLY_TORCH_PREFIX
    RESULT_VARIABLE PIXELFLY_TORCH_RESULT
    ERROR_QUIET)
  if(NOT PIXELFLY_TORCH_RESULT EQUAL 0)
    message(FATAL_ERROR "pixelfly: python3 has no torch package; run scripts/install_deps.sh "
                        "or pass -DTorch_DIR=<libtorch>/share/cmake/Torch")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${PIXELFLY_TORCH_PREFIX}")
endif()
# Hopper only: LibTorch's CUDA config reads the architecture list from this variable.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "9.0a")
endif()
find_package(Torch REQUIRED)
find_library(TORCH_CPU_LIBRARY torch_cpu PATHS "${TORCH_INSTALL_PREFIX}/lib" REQUIRED NO_DEFAULT_PATH)
set(PIXELFLY_TORCH_HAS_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(PIXELFLY_TORCH_HAS_CUDA ON)
endif()
message(STATUS "pixelfly: LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX} (CUDA: ${PIXELFLY_TORCH_HAS_CUDA})")
