// A store location: which store it names, and how a location is shown in logs and status
// output: a PostgreSQL URL's password never is.
#include "adapter/store/store_location.hpp"

#include <gtest/gtest.h>

namespace microcare::adapter {
namespace {

TEST(StoreLocation, APostgresUrlNamesThePostgresStoreAnythingElseAFile) {
    EXPECT_TRUE(IsPostgresUrl("postgresql://db/microcare"));
    EXPECT_TRUE(IsPostgresUrl("postgres://db/microcare"));
    EXPECT_FALSE(IsPostgresUrl("/var/lib/microcare/microcare.db"));
    EXPECT_FALSE(IsPostgresUrl("var/postgresql://x"));
}

TEST(StoreLocation, ThePasswordIsRedactedWhereverTheUrlCarriesIt) {
    EXPECT_EQ(RedactStoreLocation("postgresql://mc:s3cr:et@db:5432/microcare?sslmode=require"),
              "postgresql://mc:***@db:5432/microcare?sslmode=require");
    EXPECT_EQ(RedactStoreLocation(
                  "postgresql://db/microcare?user=mc&password=s3cret&sslmode=verify-full"),
              "postgresql://db/microcare?user=mc&password=***&sslmode=verify-full");
    EXPECT_EQ(RedactStoreLocation("postgres://mc@db/microcare?passfile=/etc/microcare/pgpass"),
              "postgres://mc@db/microcare?passfile=/etc/microcare/pgpass");
    EXPECT_EQ(RedactStoreLocation("postgresql:///microcare?host=/run/postgresql"),
              "postgresql:///microcare?host=/run/postgresql");
    EXPECT_EQ(RedactStoreLocation("/var/lib/microcare/microcare.db"),
              "/var/lib/microcare/microcare.db");
}

}  // namespace
}  // namespace microcare::adapter
