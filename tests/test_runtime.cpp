#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "test_util.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/models/attention.h"

namespace {

TEST(Runtime, ParallelForRunsOnEveryThread) {
  // Built without OpenMP, ATen's header-only parallel_for runs serially and per-head attention
  // leaves all but one core idle.
  vidfuse::test::ThreadCountScope threads(2);
  EXPECT_EQ(vidfuse::parallel_for_threads(), 2);
}

TEST(Runtime, PerHeadAttentionWritesInferenceTensorsFromWorkerThreads) {
  // Worker threads must take the caller's inference mode to write into its inference tensors.
  vidfuse::test::ThreadCountScope threads(2);
  torch::manual_seed(0);
  torch::InferenceMode guard;
  auto q = torch::randn({2, 4, 33, 16}), k = torch::randn({2, 4, 40, 16}),
       v = torch::randn({2, 4, 40, 16});
  auto out = vidfuse::models::attention(q, k, v, 0.25);
  auto ref = torch::matmul(torch::softmax(torch::matmul(q, k.transpose(-2, -1)) * 0.25, -1), v)
                 .transpose(1, 2)
                 .reshape({2, 33, 64});
  EXPECT_TRUE(torch::allclose(out, ref, 1e-5, 1e-6));
}

}  // namespace
