#pragma once

#include "adapter/client/ehr.hpp"
#include "adapter/client/ehr_health.hpp"

namespace microcare::adapter {

// An Ehr that forwards every request to another and tells EhrHealth what each one showed, so
// that reachability is learnt from the worker's real exchanges and neither the worker nor the
// FHIR client has to know who watches.
class ObservedEhr final : public Ehr {
public:
    ObservedEhr(Ehr& ehr, EhrHealth& health) : ehr_(ehr), health_(health) {}

    boost::asio::awaitable<Result<HttpResponse>> Get(std::string path_or_url) override;
    boost::asio::awaitable<Result<HttpResponse>> Post(std::string path, std::string body) override;
    boost::asio::awaitable<Result<SearchResult>> SearchAll(std::string query) override;

private:
    void Note(const Result<HttpResponse>& result);

    Ehr& ehr_;
    EhrHealth& health_;
};

}  // namespace microcare::adapter
