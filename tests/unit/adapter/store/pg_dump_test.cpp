// Putting a PostgreSQL store's dump back (adapter/store/pg_dump.hpp), against the suite's own
// PostgreSQL server. The whole `microcare restore` is in tests/integration/replicas_test.cpp.
#include "adapter/store/pg_dump.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "adapter/file_io.hpp"
#include "adapter/store/pg_job_store.hpp"
#include "tests/unit/adapter/store/pg_test_database.hpp"

namespace microcare::adapter {
namespace {

// A store of a later release (its schema_version beyond what this one knows) would be put back
// only for every replica to refuse it: refused before pg_restore touches the schema.
TEST(RestorePostgresStore, AStoreOfALaterReleaseIsRefusedAndTheSchemaStaysEmpty) {
    test_support::PgTestSchema pg;
    if (!pg.available()) GTEST_SKIP() << pg.skip_reason();
    const std::string later = std::to_string(PgJobStore::NewestSchemaVersion() + 1);
    ASSERT_TRUE(pg.Query(
        "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL "
        "DEFAULT now()); INSERT INTO schema_version (version) VALUES (1), (" +
        later + "); CREATE TABLE jobs (id BIGINT)"));
    const auto scratch = MakeScratchDirectory("pg-dump-test");
    ASSERT_TRUE(scratch);
    const std::string file = *scratch + "/store.pgdump";
    std::string problem;
    ASSERT_TRUE(DumpPostgresStore(pg.url(), file, problem)) << problem;
    ASSERT_TRUE(pg.Query("DROP SCHEMA " + pg.schema() + " CASCADE; CREATE SCHEMA " + pg.schema()));

    auto restored = RestorePostgresStore(pg.url(), file, problem);
    ASSERT_FALSE(restored);
    EXPECT_EQ(restored.error(), Error::kInvalidConfig);
    EXPECT_NE(problem.find("schema version " + later), std::string::npos) << problem;
    EXPECT_EQ(pg.Query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"), "0");

    // The same store at this release's version goes back whole.
    ASSERT_TRUE(
        pg.Query("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at "
                 "TIMESTAMPTZ NOT NULL DEFAULT now()); INSERT INTO schema_version "
                 "(version) VALUES (1); CREATE TABLE jobs (id BIGINT)"));
    ASSERT_TRUE(DumpPostgresStore(pg.url(), file, problem)) << problem;
    ASSERT_TRUE(pg.Query("DROP SCHEMA " + pg.schema() + " CASCADE; CREATE SCHEMA " + pg.schema()));
    ASSERT_TRUE(RestorePostgresStore(pg.url(), file, problem)) << problem;
    EXPECT_EQ(pg.Query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"), "2");
}

}  // namespace
}  // namespace microcare::adapter
