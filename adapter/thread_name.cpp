#include "adapter/thread_name.hpp"

#include <pthread.h>

namespace microcare::adapter {

void NameThisThread(const char* name) {
    // Only a diagnostic: a name refused (too long on another libc) leaves the thread unnamed.
    static_cast<void>(::pthread_setname_np(::pthread_self(), name));
}

}  // namespace microcare::adapter
