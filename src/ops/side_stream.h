// Two independent pieces of device work run side by side: the first on a stream from the
// device's pool, the second on the current stream, which then waits for the first, so that
// whatever the caller queues next sees both done. Each piece's kernels may start while the
// other's last thread blocks still run (the tail of one grid filled by the next), and under CUDA
// graph capture the two become parallel branches of the graph. On the CPU the two run one after
// the other. Written against c10's device-generic streams and events, so it builds without CUDA.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <initializer_list>

namespace pixelfly::ops {

// Runs beside() then main() with beside's work on a pool stream of `device` (a CUDA device) and
// main's on the current one; the tensors listed in `made_beside` (what beside() produced,
// undefined ones skipped) are marked as used on the current stream, so that the caching
// allocator does not hand their memory to the pool stream again while the current stream may
// still read them.
template <typename Beside, typename Main>
void run_beside(const c10::Device& device, Beside&& beside, Main&& main,
                std::initializer_list<const at::Tensor*> made_beside) {
  if (!device.is_cuda()) {
    beside();
    main();
    return;
  }
  const c10::impl::VirtualGuardImpl streams(device.type());
  const c10::Stream current = streams.getStream(device);
  const c10::Stream side = streams.getStreamFromGlobalPool(device, /*isHighPriority=*/false);
  c10::Event forked(device.type());
  forked.record(current);
  forked.block(side);
  {
    const c10::StreamGuard on_side(side);
    beside();
  }
  main();
  c10::Event joined(device.type());
  joined.record(side);
  joined.block(current);
  for (const at::Tensor* t : made_beside) {
    if (t->defined()) t->record_stream(current);
  }
}

}  // namespace pixelfly::ops
