#include "adapter/audit/audit_verify.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>

#include "adapter/audit/audit_chain.hpp"

namespace microcare::adapter {
namespace {

using Kind = AuditFinding::Kind;

// Lines with their exact bytes; a last line without its newline is reported as incomplete.
class LineReader {
public:
    explicit LineReader(const std::string& path) : in_(path, std::ios::binary) {}
    bool ok() const { return static_cast<bool>(in_); }
    bool Next(std::string& line, bool& complete) {
        if (!std::getline(in_, line)) return false;
        complete = !in_.eof();
        return true;
    }

private:
    std::ifstream in_;
};

// Records missing between two lines; if they turn up further on, they were reordered.
struct Gap {
    std::uint64_t from = 0;
    std::uint64_t to = 0;     // inclusive
    std::size_t finding = 0;  // index in the problems
    std::uint64_t found = 0;
};

struct Retention {
    std::uint64_t last_seq = 0;
    std::string last_hash;
    std::string removed;
};

// Follows the chain through the files of a trail in order, checking each line and the links
// between lines and between files.
class Walker {
public:
    Walker(const std::vector<ChainKey>& keys, std::vector<AuditFinding>& problems,
           std::vector<AuditFinding>& notes, std::uint64_t remember_seq, std::string stranger_hint)
        : keys_(keys),
          problems_(problems),
          notes_(notes),
          remember_seq_(remember_seq),
          stranger_hint_(std::move(stranger_hint)) {}

    FileScan Walk(const TrailFile& file, bool first_of_walk) {
        FileScan scan;
        LineReader reader(file.path);
        if (!reader.ok()) {
            Problem(Kind::kUnreadable, file.name, 0, "cannot be read");
            return scan;
        }
        std::string line;
        bool complete = true;
        std::size_t number = 0;
        std::uint64_t offset = 0;
        file_key_checked_ = false;
        while (reader.Next(line, complete)) {
            ++number;
            if (!complete) {
                scan.torn_line = number;
                scan.torn_bytes = line.size();
                break;
            }
            offset += line.size() + 1;
            scan.good_bytes = offset;
            Line(file, number, line, first_of_walk, scan);
        }
        previous_file_ = file.name;
        return scan;
    }

    // Resolves what needs the whole walk: missing records that turned up further on were
    // reordered; a trail whose first records are gone needs a retention record saying so.
    void Finish(bool check_anchor) {
        for (const Gap& gap : gaps_) {
            AuditFinding& finding = problems_[gap.finding];
            const std::uint64_t count = gap.to - gap.from + 1;
            if (gap.found == count) {
                finding.kind = Kind::kReordered;
                finding.message = Range(gap.from, gap.to) + std::string(Are(gap.from, gap.to)) +
                                  " not before this line but further on: the records were "
                                  "reordered";
            } else if (gap.found > 0) {
                finding.message += "; some of them come later: reordered as well";
            }
        }
        if (!check_anchor || !anchor_) return;
        for (const Retention& r : retention_) {
            if (r.last_seq + 1 == anchor_->seq && r.last_hash == anchor_->prev) {
                AuditFinding note{Kind::kOlderFilesMissing, "", 0,
                                  Range(1, r.last_seq) + std::string(Are(1, r.last_seq)) +
                                      " gone: removed by retention (audit.keepFiles), as the "
                                      "trail records"};
                notes_.push_back(note);
                return;
            }
        }
        Problem(Kind::kOlderFilesMissing, anchor_->file, 1,
                "the trail begins at record " + std::to_string(anchor_->seq) + ": " +
                    Range(1, anchor_->seq - 1) + std::string(Are(1, anchor_->seq - 1)) +
                    " missing and no retention record says why");
    }

    std::uint64_t records() const { return records_; }
    std::uint64_t head_seq() const { return head_seq_; }
    const std::string& head_hash() const { return head_hash_; }

private:
    struct Anchor {
        std::uint64_t seq;
        std::string prev;
        std::string file;
    };

    static std::string Range(std::uint64_t from, std::uint64_t to) {
        return from == to ? "record " + std::to_string(from)
                          : "records " + std::to_string(from) + " to " + std::to_string(to);
    }
    static std::string_view Are(std::uint64_t from, std::uint64_t to) {
        return from == to ? " is" : " are";
    }

    void Problem(Kind kind, const std::string& file, std::size_t line, std::string message) {
        if (problems_.size() >= kMaxProblems) return;
        problems_.push_back(AuditFinding{kind, file, line, std::move(message)});
    }

    const ChainKey* KeyFor(const std::string& id) {
        if (id == unkeyed_.id()) return &unkeyed_;
        for (const ChainKey& key : keys_) {
            if (key.id() == id) return &key;
        }
        return nullptr;
    }

    void Line(const TrailFile& file, std::size_t number, const std::string& line,
              bool first_of_walk, FileScan& scan) {
        const SealedLine sealed = SplitSealedLine(line);
        if (sealed.fault == SealedLine::Fault::kBytesAfterSeal) {
            Problem(Kind::kAppendedAfterHash, file.name, number,
                    "bytes follow the hash member: something was added to the record after it "
                    "was sealed");
            return;
        }
        std::string why;
        auto record = sealed.fault == SealedLine::Fault::kNone ? ParseRecordLine(line, why)
                                                               : std::optional<AuditRecord>();
        if (!record) {
            if (why.empty()) why = "it has no hash member";
            Problem(Kind::kNotARecord, file.name, number, "not an audit record: " + why);
            return;
        }
        ++records_;
        ++scan.records;
        const bool header = record->event == kEventStart || record->event == kEventContinue;
        if (scan.records == 1) {
            // The first record of a file names the key that seals the file; a file without one
            // (cut from the front) is checked with the key of the file before it.
            if (header) key_id_ = std::string(record->Get("key"));
            if (key_id_.empty()) key_id_ = keys_.empty() ? unkeyed_.id() : keys_.front().id();
            legacy_file_ = !header && first_of_walk && IsLegacyStart(*record, sealed);
            if (legacy_file_) {
                key_id_ = std::string(kLegacyFormat);
                notes_.push_back(AuditFinding{Kind::kUnkeyed, file.name, 0,
                                              "written by an earlier release (format 1): "
                                              "SHA-256 chained only, without key or checkpoint"});
            }
            scan.key_id = header || legacy_file_ ? key_id_ : std::string();
            scan.first_seq = record->seq;
            scan.first_ts = record->ts;
        }
        CheckSeal(file, number, *record, sealed);
        if (scan.records == 1) {
            FirstRecord(file, number, *record, header, first_of_walk);
        } else {
            if (header) {
                Problem(record->event == kEventStart ? Kind::kRestarted : Kind::kChainBroken,
                        file.name, number,
                        "a record that only begins a file (" + record->event +
                            ") stands in the middle of one");
            }
            Link(file, number, *record);
        }
        if (record->event == kEventRetention) {
            Retention r;
            r.removed = record->Get("removed");
            r.last_hash = record->Get("lastHash");
            r.last_seq = std::strtoull(std::string(record->Get("lastSeq")).c_str(), nullptr, 10);
            retention_.push_back(std::move(r));
        }
        if (record->event == kEventNoCheckpoint) {
            Problem(Kind::kCheckpointMissing, file.name, number,
                    "the service found no checkpoint when it started at " + record->ts +
                        ": records cut from the end before then could not be seen");
        }
        if (remember_seq_ != 0 && record->seq == remember_seq_ && scan.hash_at_seq.empty()) {
            scan.hash_at_seq = record->hash;
        }
        scan.last_seq = record->seq;
        scan.last_hash = record->hash;
        head_seq_ = record->seq;
        head_hash_ = record->hash;
    }

    // Format 1 sealed `{...,"prev":".."}` (the line without its hash, closing brace kept) with
    // plain SHA-256 and had no opening record. Only the first file of a trail can be in it:
    // the service continues such a trail in a new file.
    static bool IsLegacySeal(const SealedLine& sealed) {
        return SealsEqual(Sha256Hex(std::string(sealed.body) + "}"), sealed.seal);
    }
    static bool IsLegacyStart(const AuditRecord& record, const SealedLine& sealed) {
        return record.seq == 1 && record.prev == kGenesisHash && IsLegacySeal(sealed);
    }

    void CheckSeal(const TrailFile& file, std::size_t number, const AuditRecord& record,
                   const SealedLine& sealed) {
        if (legacy_file_) {
            if (!IsLegacySeal(sealed)) {
                Problem(Kind::kEdited, file.name, number,
                        "record " + std::to_string(record.seq) +
                            " does not match its hash: its content was edited");
            }
            return;
        }
        const ChainKey* key = KeyFor(key_id_);
        if (key == nullptr) {
            if (key_needed_.insert(key_id_).second) {
                Problem(Kind::kKeyNeeded, file.name, number,
                        "sealed with key " + key_id_ +
                            ", which was not given: the seals of its records cannot be checked "
                            "(name the key: --config FILE, or --key-file)");
            }
            return;
        }
        if (!key->keyed() && !keys_.empty() && !file_key_checked_) {
            notes_.push_back(AuditFinding{Kind::kUnkeyed, file.name, 0,
                                          "written without a key: its records are only "
                                          "SHA-256 chained"});
        }
        file_key_checked_ = true;
        if (SealsEqual(key->Seal(sealed.body), sealed.seal)) return;
        if (key->keyed() && SealsEqual(Sha256Hex(sealed.body), sealed.seal)) {
            Problem(Kind::kForged, file.name, number,
                    "record " + std::to_string(record.seq) +
                        " is sealed with plain SHA-256, not the trail's key: written by someone "
                        "without the key (forged, or the chain rewritten)");
            return;
        }
        Problem(Kind::kEdited, file.name, number,
                "record " + std::to_string(record.seq) +
                    " does not match its seal: its content was edited (or the record forged)");
    }

    void FirstRecord(const TrailFile& file, std::size_t number, const AuditRecord& record,
                     bool header, bool first_of_walk) {
        if (!file.active && file.first_seq != record.seq) {
            Problem(Kind::kFileRenamed, file.name, number,
                    "the file's name says it begins at record " + std::to_string(file.first_seq) +
                        " but it begins at record " + std::to_string(record.seq));
        }
        if (legacy_file_) {
            Expect(record);
            return;
        }
        if (!header) {
            Problem(Kind::kCutFromFront, file.name, number,
                    "the file begins with record " + std::to_string(record.seq) + " (" +
                        record.event +
                        "), not with the record that opens a file: its beginning was cut off. "
                        "This is what logrotate's copytruncate does; MicroCare rotates its trail "
                        "itself (audit.rotateBytes), so no logrotate rule may touch it" +
                        stranger_hint_);
            Expect(record);
            return;
        }
        if (record.event == kEventStart) {
            if (!first_of_walk) {
                Problem(Kind::kRestarted, file.name, number,
                        "a new trail begins here: the chain before it does not lead to it");
            } else if (record.seq != 1 || record.prev != kGenesisHash) {
                Problem(Kind::kChainBroken, file.name, number,
                        "the first record of a trail must be record 1 with an all-zero prev");
            }
            Expect(record);
            return;
        }
        // A continued file: its first record names the file before it and carries its hash.
        if (first_of_walk) {
            anchor_ = Anchor{record.seq, record.prev, file.name};
            Expect(record);
            return;
        }
        if (record.Get("previousFile") != previous_file_) {
            Problem(Kind::kChainBroken, file.name, number,
                    "it continues " + std::string(record.Get("previousFile")) +
                        " but the file before it is " + previous_file_);
        }
        Link(file, number, record);
    }

    // The record follows the one before it: the next seq, and its hash as prev.
    void Link(const TrailFile& file, std::size_t number, const AuditRecord& record) {
        if (!expected_seq_) {
            Expect(record);
            return;
        }
        if (record.seq > *expected_seq_) {
            if (problems_.size() < kMaxProblems) {
                gaps_.push_back(Gap{*expected_seq_, record.seq - 1, problems_.size(), 0});
            }
            Problem(Kind::kRemoved, file.name, number,
                    Range(*expected_seq_, record.seq - 1) +
                        std::string(Are(*expected_seq_, record.seq - 1)) +
                        " missing before this line: removed");
            Expect(record);
            return;
        }
        if (record.seq < *expected_seq_) {
            for (Gap& gap : gaps_) {
                if (record.seq >= gap.from && record.seq <= gap.to) {
                    ++gap.found;
                    return;  // reported with the gap
                }
            }
            Problem(Kind::kReordered, file.name, number,
                    "record " + std::to_string(record.seq) + " comes after record " +
                        std::to_string(*expected_seq_ - 1) + ": repeated or out of order");
            return;  // the chain goes on from the record before it
        }
        if (record.prev != expected_prev_) {
            Problem(Kind::kChainBroken, file.name, number,
                    "its prev is not the hash of record " + std::to_string(record.seq - 1) +
                        ": the record before it was replaced");
        }
        Expect(record);
    }

    void Expect(const AuditRecord& record) {
        expected_seq_ = record.seq + 1;
        expected_prev_ = record.hash;
    }

    static constexpr std::size_t kMaxProblems = 100;

    const std::vector<ChainKey>& keys_;
    const ChainKey unkeyed_;
    std::vector<AuditFinding>& problems_;
    std::vector<AuditFinding>& notes_;
    std::uint64_t remember_seq_;
    std::string stranger_hint_;
    std::optional<std::uint64_t> expected_seq_;
    std::string expected_prev_;
    std::string previous_file_;
    std::string key_id_;
    bool file_key_checked_ = false;
    bool legacy_file_ = false;
    std::set<std::string> key_needed_;
    std::vector<Gap> gaps_;
    std::vector<Retention> retention_;
    std::optional<Anchor> anchor_;
    std::uint64_t records_ = 0;
    std::uint64_t head_seq_ = 0;
    std::string head_hash_;
};

void CheckAgainstCheckpoint(const AuditCheckpoint& c, std::uint64_t head_seq,
                            const std::string& hash_at_checkpoint, AuditReport& report) {
    const std::string when = "the checkpoint of " + c.time;
    if (c.records > head_seq) {
        if (head_seq == 0) {
            report.problems.push_back({Kind::kEmptied, "", 0,
                                       "the trail holds no records but " + when + " names " +
                                           std::to_string(c.records) +
                                           ": the trail was emptied or removed"});
        } else {
            report.problems.push_back({Kind::kCutFromEnd, c.file, 0,
                                       "the trail ends at record " + std::to_string(head_seq) +
                                           " but " + when + " names record " +
                                           std::to_string(c.records) + ": records " +
                                           std::to_string(head_seq + 1) + " to " +
                                           std::to_string(c.records) + " were cut from the end"});
        }
        return;
    }
    if (c.records == 0) return;
    if (hash_at_checkpoint.empty()) {
        report.notes.push_back({Kind::kOlderFilesMissing, c.file, 0,
                                "record " + std::to_string(c.records) + " of " + when +
                                    " is no longer in the trail: it cannot be compared"});
    } else if (!SealsEqual(hash_at_checkpoint, c.last_hash)) {
        report.problems.push_back({Kind::kRewritten, c.file, 0,
                                   "record " + std::to_string(c.records) + " is not the one " +
                                       when + " sealed: the chain was rewritten"});
    }
}

}  // namespace

std::string_view ToString(AuditFinding::Kind kind) {
    switch (kind) {
        case Kind::kUnreadable:
            return "unreadable";
        case Kind::kNotARecord:
            return "not-a-record";
        case Kind::kAppendedAfterHash:
            return "appended-after-hash";
        case Kind::kEdited:
            return "edited";
        case Kind::kForged:
            return "forged";
        case Kind::kRemoved:
            return "removed";
        case Kind::kReordered:
            return "reordered";
        case Kind::kChainBroken:
            return "chain-broken";
        case Kind::kCutFromFront:
            return "cut-from-front";
        case Kind::kOlderFilesMissing:
            return "older-files-missing";
        case Kind::kFileRenamed:
            return "file-renamed";
        case Kind::kRestarted:
            return "restarted";
        case Kind::kTornLine:
            return "torn-line";
        case Kind::kCutFromEnd:
            return "cut-from-end";
        case Kind::kEmptied:
            return "emptied";
        case Kind::kRewritten:
            return "rewritten";
        case Kind::kCheckpointInvalid:
            return "checkpoint-invalid";
        case Kind::kCheckpointMissing:
            return "checkpoint-missing";
        case Kind::kKeyNeeded:
            return "key-needed";
        case Kind::kUnkeyed:
            return "unkeyed";
        case Kind::kStranger:
            return "stranger";
    }
    return "unknown";
}

FileScan ScanTrailFile(const TrailFile& file, const std::vector<ChainKey>& keys,
                       std::uint64_t remember_seq) {
    std::vector<AuditFinding> problems;
    std::vector<AuditFinding> notes;
    Walker walker(keys, problems, notes, remember_seq, "");
    FileScan scan = walker.Walk(file, true);
    walker.Finish(false);
    scan.problems = std::move(problems);
    return scan;
}

std::optional<TrailToVerify> ConfiguredTrail(const AuditSettings& settings) {
    TrailToVerify trail;
    trail.path = settings.path;
    trail.checkpoint_path = CheckpointPathOf(settings);
    if (!settings.key.empty()) {
        auto key = ChainKey::Hmac(settings.key);
        if (!key) return std::nullopt;
        trail.keys.push_back(*key);
    }
    return trail;
}

AuditReport VerifyTrail(const TrailToVerify& trail) {
    AuditReport report;
    const TrailFileSet set = ListTrailFiles(trail.path);
    std::optional<CheckpointRead> checkpoint;
    if (!trail.checkpoint_path.empty()) {
        checkpoint = ReadCheckpoint(trail.checkpoint_path, trail.keys);
        if (checkpoint->checkpoint) report.checkpoint = checkpoint->checkpoint;
    }
    std::string hint;
    for (const std::string& name : set.strangers) {
        hint += (hint.empty() ? ". Files beside the trail that MicroCare did not write: " : ", ") +
                name;
        report.notes.push_back({Kind::kStranger, name, 0,
                                "not part of the trail (a copy logrotate made?); MicroCare's "
                                "rotated files are named " +
                                    FileName(RotatedPath(trail.path, 1))});
    }
    Walker walker(trail.keys, report.problems, report.notes,
                  report.checkpoint ? report.checkpoint->records : 0, hint);
    std::string hash_at_checkpoint;
    for (std::size_t i = 0; i < set.files.size(); ++i) {
        const TrailFile& file = set.files[i];
        FileScan scan = walker.Walk(file, i == 0);
        if (!scan.hash_at_seq.empty()) hash_at_checkpoint = scan.hash_at_seq;
        report.files.push_back(
            AuditFileSummary{file.name, scan.records, scan.first_seq, scan.last_seq, scan.key_id});
        if (scan.torn_line) {
            AuditFinding torn{Kind::kTornLine, file.name, *scan.torn_line,
                              "an unfinished last line of " + std::to_string(scan.torn_bytes) +
                                  " bytes (a crash or a full disk while it was written)"};
            if (file.active) {
                torn.message += "; the service cuts it off, and records that, when it starts";
                report.notes.push_back(std::move(torn));
            } else {
                report.problems.push_back(std::move(torn));
            }
        }
        if (!file.active && scan.records == 0 && !scan.torn_line) {
            report.problems.push_back({Kind::kNotARecord, file.name, 0, "a rotated file is empty"});
        }
    }
    walker.Finish(true);
    report.records = walker.records();
    report.head_seq = walker.head_seq();
    report.head_hash = walker.head_hash();
    if (set.files.empty() && !(report.checkpoint && report.checkpoint->records > 0)) {
        report.problems.push_back({Kind::kUnreadable, FileName(trail.path), 0,
                                   "there is no audit trail at " + trail.path});
    }
    if (checkpoint) {
        if (report.checkpoint) {
            CheckAgainstCheckpoint(*report.checkpoint, report.head_seq, hash_at_checkpoint, report);
        } else if (!checkpoint->missing) {
            report.problems.push_back({Kind::kCheckpointInvalid, "", 0, checkpoint->problem});
        } else if (!report.files.empty() && report.files.back().key_id == kLegacyFormat) {
            report.notes.push_back({Kind::kCheckpointMissing, "", 0,
                                    "no checkpoint: the trail is in the format of an earlier "
                                    "release, which wrote none"});
        } else if (report.records > 0) {
            report.problems.push_back(
                {Kind::kCheckpointMissing, "", 0,
                 checkpoint->problem + ": records cut from the end of the trail would not show"});
        }
    }
    if (trail.keys.empty()) {
        report.notes.push_back(
            {Kind::kUnkeyed, "", 0,
             "the trail is checked without a key: its SHA-256 chain shows accidents and clumsy "
             "edits, but whoever can write the files can rewrite the whole chain. Set "
             "audit.keyFile"});
    }
    return report;
}

}  // namespace microcare::adapter
