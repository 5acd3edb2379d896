#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/error.hpp"

namespace microcare::adapter {

// The trail's head: the last record's seq (0: no record yet) and seal.
struct TrailHead {
    std::uint64_t seq = 0;
    std::string hash;
};

// Records sealed after a head: the lines of seq head.seq + 1 on, the new head, and the sealed
// checkpoint of that head.
struct SealedBatch {
    std::vector<std::string> lines;
    TrailHead head;
    std::string checkpoint;
};

// A trail kept in a database that several processes append to (replicas on one PostgreSQL
// store): one chain for all of them, so the chain is serialised by the database, not by a
// process. A seam of AuditLog, beside its files.
class AuditTable {
public:
    virtual ~AuditTable() = default;

    using Seal = std::function<Result<SealedBatch>(const TrailHead& head)>;
    // Holds every other appender off (in any process) while `seal` seals records after the head
    // as committed, then stores its lines and checkpoint in one transaction, durably (the
    // commit waits for the flush). Nothing is stored when `seal` or the store fails.
    virtual Result<void> Append(const Seal& seal) = 0;

    // The head as committed, its sealed checkpoint and the line of its record.
    struct Stored {
        TrailHead head;
        std::string checkpoint;
        std::string last_line;  // empty when the head's record is not there
    };
    virtual Result<Stored> ReadHead() = 0;

    // Every line in seq order.
    virtual Result<void> ReadLines(const std::function<void(std::string_view line)>& line) = 0;
};

}  // namespace microcare::adapter
