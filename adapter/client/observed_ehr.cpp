#include "adapter/client/observed_ehr.hpp"

namespace microcare::adapter {

void ObservedEhr::Note(const Result<HttpResponse>& result) {
    if (result) {
        health_.NoteAnswer(result->status);
    } else {
        health_.NoteFailure(result.error());
    }
}

boost::asio::awaitable<Result<HttpResponse>> ObservedEhr::Get(std::string path_or_url) {
    Result<HttpResponse> result = co_await ehr_.Get(std::move(path_or_url));
    Note(result);
    co_return result;
}

boost::asio::awaitable<Result<HttpResponse>> ObservedEhr::Post(std::string path, std::string body) {
    Result<HttpResponse> result = co_await ehr_.Post(std::move(path), std::move(body));
    Note(result);
    co_return result;
}

boost::asio::awaitable<Result<SearchResult>> ObservedEhr::SearchAll(std::string query) {
    Result<SearchResult> result = co_await ehr_.SearchAll(std::move(query));
    if (!result) {
        health_.NoteFailure(result.error());
    } else if (result->failure) {
        health_.NoteAnswer(result->failure->status);
    } else {
        health_.NoteAnswer(200);  // every page came back 2xx
    }
    co_return result;
}

}  // namespace microcare::adapter
