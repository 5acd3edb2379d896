#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/bundle.hpp"
#include "fhir/date_time.hpp"
#include "fhir/issues.hpp"
#include "fhir/json.hpp"
#include "fhir/patient_record.hpp"
#include "fhir/transaction_builder.hpp"
#include "rules/assessment.hpp"
#include "rules/rule_set.hpp"

namespace microcare::rules {

// Which encounter of the record to assess.
struct EncounterChoice {
    // "Encounter/123" or "123"; none: the record's latest microneedling encounter, or else its
    // latest encounter of any kind.
    std::optional<std::string> reference;
    // Where the reference came from, named in the problem when the record lacks it
    // ("--encounter", "MessageHeader.focus").
    std::string source = "encounter";
    // A treatment not yet given, assessed before it is (CDS Hooks): `reference` then names a
    // proposed Appointment or draft ServiceRequest of the record instead of an Encounter, and
    // `patient` ("Patient/9") is its subject when the resource names none. Nothing is written
    // for it: transaction() stays empty.
    bool proposed = false;
    std::string patient = {};
    // A proposed treatment screened before the visit (a booked Appointment): transaction()
    // holds what BuildPreVisitTransaction writes instead of nothing.
    bool pre_visit = false;
};

// A patient's record as the EHR returned it in several answers, parsed once: `resources`
// view into `documents`, in record order.
struct RecordDocuments {
    std::vector<fhir::JsonDocument> documents;
    std::vector<fhir::Node> resources;
};

// The one assessment pipeline, for every caller (the worker, `microcare evaluate`, and what
// assesses before a visit): the record as the EHR returned it, read once, the encounter
// chosen and checked, the rules evaluated and what MicroCare writes built. Everything here
// views into the record, so the whole lives and dies as one object.
class RecordAssessment {
public:
    // `record` is a Bundle of one patient's resources. The record's problems (invalid JSON,
    // unreadable resources, no such encounter, an encounter without a subject) are reported
    // to `issues` with their JSON paths and give nullptr: nothing is assessed on a record that
    // was only partly understood.
    static std::unique_ptr<const RecordAssessment> Run(const RuleSet& pack,
                                                       const std::string& record,
                                                       const EncounterChoice& encounter,
                                                       fhir::Instant now, fhir::IssueList& issues);
    // The same for a record read as several documents (paths as if one collection Bundle
    // held its resources in order).
    static std::unique_ptr<const RecordAssessment> Run(const RuleSet& pack, RecordDocuments record,
                                                       const EncounterChoice& encounter,
                                                       fhir::Instant now, fhir::IssueList& issues);

    RecordAssessment(const RecordAssessment&) = delete;
    RecordAssessment& operator=(const RecordAssessment&) = delete;

    const fhir::ClinicalResource& encounter() const { return *encounter_; }
    const Assessment& assessment() const { return assessment_; }
    // The same record and encounter evaluated under another pack, for a replay that compares
    // packs on one read of the record. It views into this object and `other`: it must not
    // outlive either.
    Assessment EvaluateUnder(const RuleSet& other, fhir::Instant now) const;
    // Empty (no CarePlan) when the assessment does not apply.
    const fhir::TransactionValue& transaction() const { return transaction_; }
    // The transaction Bundle to post, as JSON.
    std::string TransactionJson(bool pretty = false) const;
    // For people: which rules fired, on which resources and dates (no names, no free text).
    std::string Summary() const;
    // For the audit trail: `rule:severity@Type/id[/_history/vid] ...`, ids only.
    std::string FindingsLine() const;

private:
    explicit RecordAssessment(const RuleSet& pack) : pack_(pack) {}
    // The steps after indexing, shared by both entry points; false on a problem.
    bool Assess(const EncounterChoice& choice, fhir::Instant now, fhir::IssueList& issues);

    const RuleSet& pack_;
    RecordDocuments documents_;  // own the text everything views into
    std::optional<fhir::BundleIndex> index_;
    fhir::PatientRecord record_;
    const fhir::ClinicalResource* encounter_ = nullptr;
    Assessment assessment_;
    fhir::TransactionValue transaction_;
};

}  // namespace microcare::rules
