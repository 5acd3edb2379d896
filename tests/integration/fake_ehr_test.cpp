#include "tests/integration/fake_ehr.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fhir/issues.hpp"
#include "fhir/json.hpp"

namespace microcare::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr std::string_view kSystem = "https://microcare.example/fhir/sid/generated";

std::string ReadFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string Example(std::string_view name) {
    return ReadFile(std::filesystem::path(MICROCARE_SOURCE_DIR) / "config" / "examples" /
                    std::string(name));
}

// ---- A plain Beast client ------------------------------------------------------------------

struct Reply {
    beast::error_code error;  // set when no response came
    unsigned status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names

    fhir::JsonDocument Json() const {
        fhir::IssueList issues;
        std::optional<fhir::JsonDocument> doc = fhir::JsonDocument::Parse(body, issues);
        EXPECT_TRUE(doc.has_value()) << body;
        return doc ? std::move(*doc) : fhir::JsonDocument();
    }
};

http::request<http::string_body> MakeRequest(http::verb method, std::string target,
                                             std::string body,
                                             std::map<std::string, std::string> headers) {
    http::request<http::string_body> request{method, target, 11};
    request.set(http::field::host, "127.0.0.1");
    request.set(http::field::accept, "application/fhir+json");
    if (!body.empty()) request.set(http::field::content_type, "application/fhir+json");
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = std::move(body);
    request.prepare_payload();
    return request;
}

template <class Stream>
asio::awaitable<Reply> Exchange(Stream& stream, beast::tcp_stream& lowest,
                                http::request<http::string_body> request,
                                std::chrono::milliseconds timeout) {
    Reply reply;
    lowest.expires_after(timeout);
    auto [write_ec, written] =
        co_await http::async_write(stream, request, asio::as_tuple(asio::use_awaitable));
    if (write_ec) {
        reply.error = write_ec;
        co_return reply;
    }
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    auto [read_ec, read] =
        co_await http::async_read(stream, buffer, response, asio::as_tuple(asio::use_awaitable));
    if (read_ec) {
        reply.error = read_ec;
        co_return reply;
    }
    reply.status = response.result_int();
    reply.body = std::move(response.body());
    for (const auto& field : response) {
        std::string name(field.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        reply.headers[name] = std::string(field.value());
    }
    co_return reply;
}

// One client connection, reused while the server keeps it alive.
class Client {
public:
    explicit Client(std::uint16_t port) : endpoint_(asio::ip::make_address("127.0.0.1"), port) {}

    Reply Send(http::verb method, std::string target, std::string body = {},
               std::map<std::string, std::string> headers = {},
               std::chrono::milliseconds timeout = 5s) {
        io_.restart();
        auto future = asio::co_spawn(
            io_,
            Run(MakeRequest(method, std::move(target), std::move(body), std::move(headers)),
                timeout),
            asio::use_future);
        io_.run();
        return future.get();
    }

    Reply Get(std::string target) { return Send(http::verb::get, std::move(target)); }
    Reply Post(std::string target, std::string body,
               std::map<std::string, std::string> headers = {}) {
        return Send(http::verb::post, std::move(target), std::move(body), std::move(headers));
    }

private:
    asio::awaitable<Reply> Run(http::request<http::string_body> request,
                               std::chrono::milliseconds timeout) {
        if (!stream_ || !stream_->socket().is_open()) {
            stream_.emplace(io_);
            stream_->expires_after(timeout);
            auto [ec] =
                co_await stream_->async_connect(endpoint_, asio::as_tuple(asio::use_awaitable));
            if (ec) {
                Reply reply;
                reply.error = ec;
                co_return reply;
            }
        }
        Reply reply = co_await Exchange(*stream_, *stream_, std::move(request), timeout);
        if (reply.error || reply.headers["connection"] == "close") {
            beast::error_code ignored;
            stream_->socket().close(ignored);
        }
        co_return reply;
    }

    asio::io_context io_;
    tcp::endpoint endpoint_;
    std::optional<beast::tcp_stream> stream_;
};

// One request on a new connection.
Reply Fetch(const FakeEhr& ehr, http::verb method, std::string target, std::string body = {},
            std::map<std::string, std::string> headers = {},
            std::chrono::milliseconds timeout = 5s) {
    Client client(ehr.port());
    return client.Send(method, std::move(target), std::move(body), std::move(headers), timeout);
}

// ---- FHIR helpers ----------------------------------------------------------------------------

// CarePlan, DetectedIssue and Task referring to each other by urn:uuid, each a conditional
// create on its identifier: the shape of what MicroCare writes.
std::string TransactionBundle(std::string_view key = "enc-1") {
    const std::string k(key);
    const std::string system(kSystem);
    return R"({"resourceType":"Bundle","type":"transaction","entry":[
  {"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000001",
   "resource":{"resourceType":"CarePlan",
     "identifier":[{"system":")" +
           system + R"(","value":")" + k + R"(:careplan"}],
     "status":"active","intent":"plan","subject":{"reference":"Patient/pat-chloe-besson"},
     "encounter":{"reference":"Encounter/enc-mn-20261120"},
     "supportingInfo":[{"reference":"urn:uuid:00000000-0000-4000-8000-000000000002"}]},
   "request":{"method":"POST","url":"CarePlan",
     "ifNoneExist":"identifier=)" +
           system + "|" + k + R"(:careplan"}},
  {"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000002",
   "resource":{"resourceType":"DetectedIssue",
     "identifier":[{"system":")" +
           system + R"(","value":")" + k + R"(:issue"}],
     "status":"final","patient":{"reference":"Patient/pat-chloe-besson"}},
   "request":{"method":"POST","url":"DetectedIssue",
     "ifNoneExist":"identifier=)" +
           system + "|" + k + R"(:issue"}},
  {"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000003",
   "resource":{"resourceType":"Task",
     "identifier":[{"system":")" +
           system + R"(","value":")" + k + R"(:task"}],
     "status":"requested","intent":"order",
     "focus":{"reference":"urn:uuid:00000000-0000-4000-8000-000000000001"},
     "for":{"reference":"Patient/pat-chloe-besson"}},
   "request":{"method":"POST","url":"Task",
     "ifNoneExist":"identifier=)" +
           system + "|" + k + R"(:task"}}]})";
}

std::vector<std::string> Statuses(const Reply& reply) {
    std::vector<std::string> out;
    const fhir::JsonDocument doc = reply.Json();
    const fhir::Node entries = doc.Root()["entry"];
    for (std::size_t i = 0; i < entries.Size(); ++i) {
        out.emplace_back(entries[i]["response"]["status"].String());
    }
    return out;
}

std::vector<std::string> EntryIds(const fhir::JsonDocument& bundle) {
    std::vector<std::string> ids;
    const fhir::Node entries = bundle.Root()["entry"];
    for (std::size_t i = 0; i < entries.Size(); ++i) {
        ids.emplace_back(entries[i]["resource"]["id"].String());
    }
    return ids;
}

// Follows Bundle.link next from `target`; returns every id and the number of pages.
std::pair<std::vector<std::string>, int> SearchAll(const FakeEhr& ehr, std::string target) {
    std::vector<std::string> ids;
    int pages = 0;
    Client client(ehr.port());
    const std::string origin = "http://127.0.0.1:" + std::to_string(ehr.port());
    while (!target.empty() && pages < 100) {
        const Reply reply = client.Get(target);
        EXPECT_EQ(reply.status, 200u) << reply.body;
        if (reply.status != 200) break;
        ++pages;
        const fhir::JsonDocument doc = reply.Json();
        for (const std::string& id : EntryIds(doc)) ids.push_back(id);
        target.clear();
        const fhir::Node links = doc.Root()["link"];
        for (std::size_t i = 0; i < links.Size(); ++i) {
            if (links[i]["relation"].String() == "next") {
                const std::string url(links[i]["url"].String());
                EXPECT_TRUE(url.starts_with(origin)) << url;
                target = url.substr(origin.size());
            }
        }
    }
    return {ids, pages};
}

// ---- Life cycle ----------------------------------------------------------------------------

TEST(FakeEhr, ListensOnAnEphemeralLoopbackPortAndStops) {
    FakeEhr ehr;
    EXPECT_NE(ehr.port(), 0);
    EXPECT_EQ(ehr.BaseUrl(), "http://127.0.0.1:" + std::to_string(ehr.port()) + "/fhir");
    const Reply metadata = Fetch(ehr, http::verb::get, "/fhir/metadata");
    EXPECT_EQ(metadata.status, 200u);
    EXPECT_EQ(metadata.Json().Root()["fhirVersion"].String(), "4.0.1");
    ehr.Stop();
    ehr.Stop();  // idempotent
    const Reply after = Fetch(ehr, http::verb::get, "/fhir/metadata", {}, {}, 1s);
    EXPECT_TRUE(after.error) << "still answering after Stop";
}

TEST(FakeEhr, StopClosesIdleKeepAliveConnectionsPromptly) {
    FakeEhr ehr;
    Client client(ehr.port());
    ASSERT_EQ(client.Get("/fhir/metadata").status, 200u);  // the connection stays open
    const auto start = std::chrono::steady_clock::now();
    ehr.Stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(FakeEhr, KeepAliveConnectionsAreReused) {
    FakeEhr ehr;
    Client client(ehr.port());
    ASSERT_EQ(client.Get("/fhir/metadata").status, 200u);
    ASSERT_EQ(client.Get("/fhir/metadata").status, 200u);
    const auto requests = ehr.Requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[0].connection, requests[1].connection);
}

// ---- Data, read and search -------------------------------------------------------------------

TEST(FakeEhr, LoadsACollectionBundleKeepingIdsAndReadsThem) {
    FakeEhr ehr;
    EXPECT_EQ(ehr.Load(Example("absolute-isotretinoin.json")), 13u);
    EXPECT_EQ(ehr.Count("Condition"), 4u);
    EXPECT_EQ(ehr.Count("Patient"), 1u);

    const Reply encounter = Fetch(ehr, http::verb::get, "/fhir/Encounter/enc-mn-20261120");
    ASSERT_EQ(encounter.status, 200u) << encounter.body;
    EXPECT_EQ(encounter.headers.at("content-type").find("application/fhir+json"), 0u);
    const fhir::JsonDocument doc = encounter.Json();
    EXPECT_EQ(doc.Root()["resourceType"].String(), "Encounter");
    EXPECT_EQ(doc.Root()["id"].String(), "enc-mn-20261120");
    EXPECT_EQ(doc.Root()["subject"]["reference"].String(), "Patient/pat-chloe-besson");

    const Reply missing = Fetch(ehr, http::verb::get, "/fhir/Encounter/nope");
    EXPECT_EQ(missing.status, 404u);
    EXPECT_EQ(missing.Json().Root()["resourceType"].String(), "OperationOutcome");
    EXPECT_FALSE(ehr.Get("Encounter", "nope").has_value());
    EXPECT_TRUE(ehr.Get("Encounter", "enc-mn-20261120").has_value());
}

TEST(FakeEhr, LoadRewritesUrnUuidReferencesAndAssignsMissingIds) {
    FakeEhr ehr;
    ASSERT_EQ(ehr.Load(Example("clean-first-session.json")), 16u);
    // Resources that have an id keep it; references to urn:uuid fullUrls become Type/id.
    const fhir::JsonDocument encounter =
        Fetch(ehr, http::verb::get, "/fhir/Encounter/enc-mn-20261120").Json();
    EXPECT_EQ(encounter.Root()["subject"]["reference"].String(), "Patient/pat-sofia-marchetti");

    ehr.Load(R"({"resourceType":"Bundle","type":"collection","entry":[
      {"fullUrl":"urn:uuid:aaaaaaaa-0000-4000-8000-000000000001",
       "resource":{"resourceType":"Patient","name":[{"family":"Doe"}]}},
      {"fullUrl":"urn:uuid:aaaaaaaa-0000-4000-8000-000000000002",
       "resource":{"resourceType":"Condition",
         "subject":{"reference":"urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"}}}]})");
    const std::vector<std::string> conditions = ehr.All("Condition");
    ASSERT_EQ(conditions.size(), 6u);
    fhir::IssueList issues;
    const auto last = fhir::JsonDocument::Parse(conditions.back(), issues);
    ASSERT_TRUE(last);
    const std::string subject(last->Root()["subject"]["reference"].String());
    ASSERT_TRUE(subject.starts_with("Patient/")) << subject;
    EXPECT_TRUE(ehr.Get("Patient", subject.substr(8)).has_value());
}

TEST(FakeEhr, PutAndGetHelpers) {
    FakeEhr ehr;
    EXPECT_EQ(ehr.Put(R"({"resourceType":"Patient","id":"p1"})"), "Patient/p1");
    const std::string assigned = ehr.Put(R"({"resourceType":"Patient"})");
    EXPECT_TRUE(assigned.starts_with("Patient/")) << assigned;
    EXPECT_EQ(ehr.Count("Patient"), 2u);
    EXPECT_THROW(ehr.Put("[1]"), std::invalid_argument);
    EXPECT_THROW(ehr.Load("{"), std::invalid_argument);
}

TEST(FakeEhr, SearchesByPatientInEitherFormAndBySubject) {
    FakeEhr ehr;
    ehr.Load(Example("absolute-isotretinoin.json"));
    ehr.Load(Example("another-patient.json"));
    for (const std::string target : {"/fhir/Condition?patient=Patient/pat-chloe-besson",
                                     "/fhir/Condition?patient=pat-chloe-besson",
                                     "/fhir/Condition?patient=Patient%2Fpat-chloe-besson",
                                     "/fhir/Condition?subject=Patient/pat-chloe-besson"}) {
        const Reply reply = Fetch(ehr, http::verb::get, target);
        ASSERT_EQ(reply.status, 200u) << target << ": " << reply.body;
        const fhir::JsonDocument doc = reply.Json();
        EXPECT_EQ(doc.Root()["type"].String(), "searchset");
        EXPECT_EQ(doc.Root()["total"].NumberText(), "4") << target;
        EXPECT_EQ(EntryIds(doc).size(), 4u) << target;
    }
    // AllergyIntolerance refers to its patient by `patient`; the other patient's is not returned.
    const auto [allergies, pages] =
        SearchAll(ehr, "/fhir/AllergyIntolerance?patient=Patient/pat-elena-petrova");
    EXPECT_TRUE(allergies.empty());
    EXPECT_EQ(ehr.Search("AllergyIntolerance", "patient=Patient/pat-lea-dubois").size(), 1u);
    // Unknown parameters are refused, as a real server does.
    EXPECT_EQ(Fetch(ehr, http::verb::get, "/fhir/Condition?colour=red").status, 400u);
}

TEST(FakeEhr, PagesWithCountAndNextLinks) {
    FakeEhr ehr;
    ehr.Load(Example("absolute-isotretinoin.json"));
    const Reply first =
        Fetch(ehr, http::verb::get, "/fhir/Condition?patient=Patient/pat-chloe-besson&_count=3");
    const fhir::JsonDocument page = first.Json();
    EXPECT_EQ(page.Root()["total"].NumberText(), "4");
    EXPECT_EQ(EntryIds(page).size(), 3u);

    const auto [ids, pages] =
        SearchAll(ehr, "/fhir/Condition?patient=Patient/pat-chloe-besson&_count=1");
    EXPECT_EQ(pages, 4);
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()),
              (std::set<std::string>{"cond-acne", "cond-keloid-refuted", "cond-pregnancy-eie",
                                     "cond-rhinitis"}));
    EXPECT_EQ(ehr.RequestCount("GET", RequestKind::kSearch, "Condition"), 5u);
}

TEST(FakeEhr, SearchesByIdentifier) {
    FakeEhr ehr;
    ehr.Put(R"({"resourceType":"CarePlan","id":"cp1","identifier":[{"system":"s","value":"v1"}]})");
    ehr.Put(R"({"resourceType":"CarePlan","id":"cp2","identifier":[{"system":"s","value":"v2"}]})");
    EXPECT_EQ(EntryIds(Fetch(ehr, http::verb::get, "/fhir/CarePlan?identifier=s|v1").Json()),
              std::vector<std::string>{"cp1"});
    EXPECT_EQ(EntryIds(Fetch(ehr, http::verb::get, "/fhir/CarePlan?identifier=s%7Cv2").Json()),
              std::vector<std::string>{"cp2"});
    EXPECT_EQ(
        EntryIds(Fetch(ehr, http::verb::get, "/fhir/CarePlan?identifier=v1,v2").Json()).size(), 2u);
    EXPECT_TRUE(
        EntryIds(Fetch(ehr, http::verb::get, "/fhir/CarePlan?identifier=other|v1").Json()).empty());
}

// ---- Writes ----------------------------------------------------------------------------------

TEST(FakeEhr, TransactionCreatesOnceAndResolvesUrnUuids) {
    FakeEhr ehr;
    const Reply first = Fetch(ehr, http::verb::post, "/fhir", TransactionBundle());
    ASSERT_EQ(first.status, 200u) << first.body;
    const fhir::JsonDocument response = first.Json();
    EXPECT_EQ(response.Root()["type"].String(), "transaction-response");
    EXPECT_EQ(Statuses(first),
              (std::vector<std::string>{"201 Created", "201 Created", "201 Created"}));
    const std::string location(response.Root()["entry"][1]["response"]["location"].String());
    ASSERT_TRUE(location.starts_with("DetectedIssue/")) << location;
    const std::string issue_id = location.substr(14, location.find("/_history") - 14);

    const std::vector<std::string> care_plans = ehr.All("CarePlan");
    ASSERT_EQ(care_plans.size(), 1u);
    fhir::IssueList issues;
    const auto care_plan = fhir::JsonDocument::Parse(care_plans[0], issues);
    ASSERT_TRUE(care_plan);
    EXPECT_EQ(care_plan->Root()["supportingInfo"][0]["reference"].String(),
              "DetectedIssue/" + issue_id);
    const auto task = fhir::JsonDocument::Parse(ehr.All("Task")[0], issues);
    EXPECT_EQ(task->Root()["focus"]["reference"].String(),
              "CarePlan/" + std::string(care_plan->Root()["id"].String()));

    // The same transaction again: every conditional create finds its resource.
    const Reply second = Fetch(ehr, http::verb::post, "/fhir", TransactionBundle());
    ASSERT_EQ(second.status, 200u) << second.body;
    EXPECT_EQ(Statuses(second), (std::vector<std::string>{"200 OK", "200 OK", "200 OK"}));
    EXPECT_EQ(second.Json().Root()["entry"][1]["response"]["location"].String(), location);
    EXPECT_EQ(ehr.Count("CarePlan"), 1u);
    EXPECT_EQ(ehr.Count("DetectedIssue"), 1u);
    EXPECT_EQ(ehr.Count("Task"), 1u);

    const std::string query =
        "/fhir/CarePlan?identifier=" + std::string(kSystem) + "|enc-1:careplan";
    EXPECT_EQ(Fetch(ehr, http::verb::get, query).Json().Root()["total"].NumberText(), "1");
    EXPECT_EQ(ehr.RequestCount("POST", RequestKind::kTransaction), 2u);
}

TEST(FakeEhr, TransactionReturnsRepresentationWhenPreferred) {
    FakeEhr ehr;
    const Reply reply = Fetch(ehr, http::verb::post, "/fhir", TransactionBundle(),
                              {{"Prefer", "return=representation"}});
    ASSERT_EQ(reply.status, 200u);
    EXPECT_EQ(reply.Json().Root()["entry"][0]["resource"]["resourceType"].String(), "CarePlan");
}

TEST(FakeEhr, RefusesBadTransactionsWithoutStoringAnything) {
    FakeEhr ehr;
    // A urn:uuid reference that no entry defines.
    std::string dangling = TransactionBundle();
    dangling.replace(dangling.find("000000000002\"}]"), 12, "000000000099");
    const Reply bad = Fetch(ehr, http::verb::post, "/fhir", dangling);
    EXPECT_EQ(bad.status, 400u) << bad.body;
    EXPECT_EQ(bad.Json().Root()["resourceType"].String(), "OperationOutcome");
    EXPECT_EQ(
        Fetch(ehr, http::verb::post, "/fhir", R"({"resourceType":"Bundle","type":"collection"})")
            .status,
        400u);
    EXPECT_EQ(Fetch(ehr, http::verb::post, "/fhir", "{not json").status, 400u);
    EXPECT_EQ(ehr.Count("CarePlan"), 0u);
    // Two stored resources match an ifNoneExist: 412, nothing stored.
    ehr.Put(R"({"resourceType":"CarePlan","identifier":[{"system":")" + std::string(kSystem) +
            R"(","value":"enc-1:careplan"}]})");
    ehr.Put(R"({"resourceType":"CarePlan","identifier":[{"system":")" + std::string(kSystem) +
            R"(","value":"enc-1:careplan"}]})");
    EXPECT_EQ(Fetch(ehr, http::verb::post, "/fhir", TransactionBundle()).status, 412u);
    EXPECT_EQ(ehr.Count("Task"), 0u);
}

TEST(FakeEhr, PlainAndConditionalCreate) {
    FakeEhr ehr;
    const std::string care_plan =
        R"({"resourceType":"CarePlan","status":"active","intent":"plan",
            "identifier":[{"system":"s","value":"x"}],"subject":{"reference":"Patient/p"}})";
    const Reply created = Fetch(ehr, http::verb::post, "/fhir/CarePlan", care_plan,
                                {{"If-None-Exist", "identifier=s|x"}});
    ASSERT_EQ(created.status, 201u) << created.body;
    EXPECT_NE(created.headers.at("location").find("/fhir/CarePlan/"), std::string::npos);
    const Reply again = Fetch(ehr, http::verb::post, "/fhir/CarePlan", care_plan,
                              {{"If-None-Exist", "identifier=s|x"}});
    EXPECT_EQ(again.status, 200u);
    EXPECT_EQ(again.headers.at("location"), created.headers.at("location"));
    EXPECT_EQ(ehr.Count("CarePlan"), 1u);
    EXPECT_EQ(Fetch(ehr, http::verb::post, "/fhir/CarePlan", care_plan).status, 201u);
    EXPECT_EQ(ehr.Count("CarePlan"), 2u);
    EXPECT_EQ(Fetch(ehr, http::verb::post, "/fhir/Task", care_plan).status, 400u);
    EXPECT_EQ(ehr.RequestCount("POST", RequestKind::kCreate, "CarePlan"), 3u);
    EXPECT_EQ(ehr.RequestCount("POST", RequestKind::kCreate, "Task"), 1u);
}

// ---- Faults ---------------------------------------------------------------------------------

TEST(FakeEhr, StatusFaultsApplyToTheNextMatchingRequestsOnly) {
    FakeEhr ehr;
    ehr.Load(Example("absolute-isotretinoin.json"));
    ehr.InjectFault("GET", "Encounter/", Fault::ServerError(), 2);
    EXPECT_EQ(ehr.PendingFaults(), 2u);
    EXPECT_EQ(Fetch(ehr, http::verb::get, "/fhir/Patient/pat-chloe-besson").status, 200u);
    const Reply failed = Fetch(ehr, http::verb::get, "/fhir/Encounter/enc-mn-20261120");
    EXPECT_EQ(failed.status, 500u);
    EXPECT_EQ(failed.Json().Root()["resourceType"].String(), "OperationOutcome");
    EXPECT_EQ(Fetch(ehr, http::verb::get, "/fhir/Encounter/enc-mn-20261120").status, 500u);
    EXPECT_EQ(Fetch(ehr, http::verb::get, "/fhir/Encounter/enc-mn-20261120").status, 200u);
    EXPECT_EQ(ehr.PendingFaults(), 0u);
    const auto requests = ehr.Requests();
    ASSERT_EQ(requests.size(), 4u);
    EXPECT_EQ(requests[1].fault, FaultAction::kRespond);
    EXPECT_EQ(requests[1].status, 500u);
    EXPECT_FALSE(requests[3].fault.has_value());
}

TEST(FakeEhr, TooManyRequestsCarriesRetryAfter) {
    FakeEhr ehr;
    ehr.InjectFault("*", "/fhir/Condition", Fault::TooManyRequests(1));
    const Reply reply = Fetch(ehr, http::verb::get, "/fhir/Condition?patient=Patient/x");
    EXPECT_EQ(reply.status, 429u);
    EXPECT_EQ(reply.headers.at("retry-after"), "1");
    EXPECT_EQ(Fetch(ehr, http::verb::get, "/fhir/Condition?patient=Patient/x").status, 200u);
}

TEST(FakeEhr, OutcomeFaultsCarryAnOperationOutcome) {
    FakeEhr ehr;
    ehr.InjectFault("POST", "", Fault::Outcome(422, "processing", "CarePlan.period: invalid"));
    const Reply reply = Fetch(ehr, http::verb::post, "/fhir", TransactionBundle());
    EXPECT_EQ(reply.status, 422u);
    const fhir::JsonDocument outcome = reply.Json();
    EXPECT_EQ(outcome.Root()["issue"][0]["code"].String(), "processing");
    EXPECT_EQ(outcome.Root()["issue"][0]["diagnostics"].String(), "CarePlan.period: invalid");
    EXPECT_EQ(ehr.Count("CarePlan"), 0u);  // nothing was processed
}

TEST(FakeEhr, ResetAndCloseAnswerNothing) {
    FakeEhr ehr;
    ehr.InjectFault("GET", "Patient", Fault::Reset());
    ehr.InjectFault("GET", "Patient", Fault::Close());
    const Reply reset = Fetch(ehr, http::verb::get, "/fhir/Patient/p");
    EXPECT_TRUE(reset.error);
    EXPECT_EQ(reset.status, 0u);
    const Reply closed = Fetch(ehr, http::verb::get, "/fhir/Patient/p");
    EXPECT_TRUE(closed.error);
    EXPECT_EQ(Fetch(ehr, http::verb::get, "/fhir/Patient/p").status, 404u);
    const auto requests = ehr.Requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(requests[0].fault, FaultAction::kReset);
    EXPECT_EQ(requests[0].status, 0u);
    EXPECT_EQ(requests[1].fault, FaultAction::kClose);
}

TEST(FakeEhr, StallNeverAnswersAndDoesNotBlockStop) {
    FakeEhr ehr;
    ehr.InjectFault("POST", "", Fault::Stall());
    const Reply stalled = Fetch(ehr, http::verb::post, "/fhir", TransactionBundle(), {}, 300ms);
    EXPECT_EQ(stalled.error, beast::error::timeout);
    EXPECT_EQ(ehr.Count("CarePlan"), 0u);
    EXPECT_EQ(ehr.RequestCount("POST", RequestKind::kTransaction), 1u);

    // A stalled request whose client is still waiting when the server stops.
    ehr.InjectFault("GET", "", Fault::Stall());
    auto waiting = std::async(std::launch::async, [&] {
        return Fetch(ehr, http::verb::get, "/fhir/metadata", {}, {}, 30s);
    });
    while (ehr.RequestCount("GET", RequestKind::kMetadata) == 0) std::this_thread::yield();
    const auto start = std::chrono::steady_clock::now();
    ehr.Stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    EXPECT_TRUE(waiting.get().error);
}

TEST(FakeEhr, CommitThenResetStoresButDoesNotAnswer) {
    FakeEhr ehr;
    ehr.InjectFault("POST", "", Fault::CommitThenReset());
    const Reply lost = Fetch(ehr, http::verb::post, "/fhir", TransactionBundle());
    EXPECT_TRUE(lost.error);
    EXPECT_EQ(ehr.Count("CarePlan"), 1u);  // the request did reach the server
    EXPECT_EQ(ehr.Count("Task"), 1u);
    // The retry finds what the lost attempt wrote.
    const Reply retry = Fetch(ehr, http::verb::post, "/fhir", TransactionBundle());
    ASSERT_EQ(retry.status, 200u);
    EXPECT_EQ(Statuses(retry), (std::vector<std::string>{"200 OK", "200 OK", "200 OK"}));
    EXPECT_EQ(ehr.Count("CarePlan"), 1u);
}

TEST(FakeEhr, DelayAnswersLate) {
    FakeEhr ehr;
    ehr.InjectFault("GET", "metadata", Fault::Delay(200ms));
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(Fetch(ehr, http::verb::get, "/fhir/metadata").status, 200u);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
}

// Two transactions posted at once, each on its own connection.
std::pair<Reply, Reply> PostTwiceAtOnce(const FakeEhr& ehr) {
    auto a = std::async(std::launch::async,
                        [&] { return Fetch(ehr, http::verb::post, "/fhir", TransactionBundle()); });
    auto b = std::async(std::launch::async,
                        [&] { return Fetch(ehr, http::verb::post, "/fhir", TransactionBundle()); });
    return {a.get(), b.get()};
}

TEST(FakeEhr, SerialisedConditionalCreatesNeverDuplicate) {
    FakeEhrOptions options;
    options.transaction_delay = 200ms;
    FakeEhr ehr(options);
    const auto [a, b] = PostTwiceAtOnce(ehr);
    EXPECT_EQ(a.status, 200u);
    EXPECT_EQ(b.status, 200u);
    EXPECT_EQ(ehr.Count("CarePlan"), 1u);
    EXPECT_EQ(ehr.MaxConcurrentTransactions(), 2u);
}

TEST(FakeEhr, RaceModeLetsConcurrentConditionalCreatesDuplicate) {
    FakeEhr ehr;
    ehr.SetRaceMode(true, 200ms);
    const auto [a, b] = PostTwiceAtOnce(ehr);
    EXPECT_EQ(a.status, 200u);
    EXPECT_EQ(b.status, 200u);
    EXPECT_EQ(Statuses(a), (std::vector<std::string>{"201 Created", "201 Created", "201 Created"}));
    EXPECT_EQ(Statuses(b), Statuses(a));
    EXPECT_EQ(ehr.Count("CarePlan"), 2u);
    EXPECT_EQ(ehr.MaxConcurrentTransactions(), 2u);
    // After the race, the conditional create itself refuses: two resources match.
    EXPECT_EQ(Fetch(ehr, http::verb::post, "/fhir", TransactionBundle()).status, 412u);
}

// ---- TLS ------------------------------------------------------------------------------------

struct SelfSigned {
    SelfSigned() {
        key = EVP_EC_gen("P-256");
        cert = X509_new();
        X509_set_version(cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
        X509_gmtime_adj(X509_getm_notBefore(cert), -60);
        X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
        X509_set_pubkey(cert, key);
        X509_NAME* name = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("fake-ehr"), -1, -1, 0);
        X509_set_issuer_name(cert, name);
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
        X509_EXTENSION* san =
            X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
        X509_add_ext(cert, san, -1);
        X509_EXTENSION_free(san);
        X509_sign(cert, key, EVP_sha256());
    }
    ~SelfSigned() {
        X509_free(cert);
        EVP_PKEY_free(key);
    }
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
};

TEST(FakeEhr, ServesHttpsWhenGivenATlsContext) {
    SelfSigned identity;
    asio::ssl::context server_tls(asio::ssl::context::tls_server);
    ASSERT_EQ(SSL_CTX_use_certificate(server_tls.native_handle(), identity.cert), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey(server_tls.native_handle(), identity.key), 1);
    FakeEhrOptions options;
    options.tls = &server_tls;
    FakeEhr ehr(options);
    ehr.Load(Example("absolute-isotretinoin.json"));
    EXPECT_TRUE(ehr.BaseUrl().starts_with("https://127.0.0.1:"));

    asio::ssl::context client_tls(asio::ssl::context::tls_client);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(client_tls.native_handle()), identity.cert);
    client_tls.set_verify_mode(asio::ssl::verify_peer);
    asio::io_context io;
    auto run = [&]() -> asio::awaitable<Reply> {
        asio::ssl::stream<beast::tcp_stream> stream(io, client_tls);
        stream.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
        beast::tcp_stream& lowest = stream.next_layer();
        lowest.expires_after(5s);
        co_await lowest.async_connect(
            tcp::endpoint(asio::ip::make_address("127.0.0.1"), ehr.port()), asio::use_awaitable);
        co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        co_return co_await Exchange(
            stream, lowest, MakeRequest(http::verb::get, "/fhir/Patient/pat-chloe-besson", {}, {}),
            5s);
    };
    auto future = asio::co_spawn(io, run(), asio::use_future);
    io.run();
    const Reply reply = future.get();
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.status, 200u);
    EXPECT_EQ(reply.Json().Root()["id"].String(), "pat-chloe-besson");
}

// ---- MicroCare's own output ------------------------------------------------------------------

TEST(FakeEhr, AcceptsMicroCareEvaluateOutputTwiceWithoutDuplicates) {
    const std::filesystem::path binary = MICROCARE_BINARY;
    if (!std::filesystem::exists(binary)) GTEST_SKIP() << binary << " not built";
    const std::string command = binary.string() + " evaluate --now 2026-11-24T12:00:00Z " +
                                MICROCARE_SOURCE_DIR +
                                "/config/examples/absolute-isotretinoin.json 2>/dev/null";
    std::string bundle;
    if (FILE* pipe = popen(command.c_str(), "r")) {
        char chunk[4096];
        std::size_t n;
        while ((n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0) bundle.append(chunk, n);
        ASSERT_EQ(pclose(pipe), 0);
    }
    ASSERT_FALSE(bundle.empty());
    FakeEhr ehr;
    ehr.Load(Example("absolute-isotretinoin.json"));
    const Reply first = Fetch(ehr, http::verb::post, "/fhir", bundle);
    ASSERT_EQ(first.status, 200u) << first.body;
    const Reply second = Fetch(ehr, http::verb::post, "/fhir", bundle);
    ASSERT_EQ(second.status, 200u) << second.body;
    for (const std::string& status : Statuses(second)) EXPECT_EQ(status, "200 OK");
    EXPECT_EQ(ehr.Count("CarePlan"), 1u);
    const std::string query =
        "/fhir/CarePlan?identifier=" + std::string(kSystem) + "|enc-mn-20261120:careplan";
    EXPECT_EQ(Fetch(ehr, http::verb::get, query).Json().Root()["total"].NumberText(), "1");
}

}  // namespace
}  // namespace microcare::testing
