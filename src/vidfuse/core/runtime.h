// Process-wide runtime setup: thread counts, and a warning when LibTorch would run on a slow BLAS.
#pragma once
#include <string>

namespace vidfuse {

// Sets intra-op threads (0 = all cores) and warns once on stderr if the BLAS in use is the
// reference implementation (about 30x slower than OpenBLAS).
void configure_runtime(int threads);

// The shared library that provides BLAS in this process, as the dynamic loader resolved it
// ("" if none is mapped).
std::string loaded_blas_library();

// True if `loaded_blas_library()` names an optimised BLAS (OpenBLAS, MKL, BLIS).
bool blas_is_fast();

// How many threads one at::parallel_for over `at::get_num_threads()` items actually ran on: 1 when
// the library was built without OpenMP, where ATen's header-only parallel_for runs serially.
int parallel_for_threads();

}  // namespace vidfuse
