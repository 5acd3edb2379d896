#pragma once

namespace microcare::adapter {

// Names the calling thread (at most 15 characters are kept), so that `top -H`, `ps -L` and
// perf show which part of MicroCare spends the CPU: "microcare-io", "microcare-store",
// "microcare-audit".
void NameThisThread(const char* name);

}  // namespace microcare::adapter
