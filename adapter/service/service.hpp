#pragma once

#include <memory>

#include "adapter/error.hpp"
#include "adapter/service_config.hpp"

namespace microcare::adapter {

class JobStore;

// The running MicroCare service, built from a validated configuration: the HTTP(S) endpoint,
// the durable store, the worker and the FHIR client to the EHR. main() builds one and waits;
// tests build one on port 0.
class Service {
public:
    // Loads the rule pack, opens the store and binds the port; nothing runs yet.
    static Result<std::unique_ptr<Service>> Create(const ServiceConfig& config);
    ~Service();

    unsigned short port() const;
    JobStore& store();
    void Start();
    // Graceful: stop accepting, let requests and jobs in flight finish within the grace
    // period, then close the store. Safe to call more than once.
    void Stop();
    // Blocks until Stop() (or SIGTERM/SIGINT when `handle_signals`).
    void Wait(bool handle_signals);

private:
    Service();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace microcare::adapter
