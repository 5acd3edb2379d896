// When a group commit stops waiting for company (adapter/batch_company.hpp): the store's queue
// and the audit trail's writer both ask it.
#include "adapter/batch_company.hpp"

#include <gtest/gtest.h>

namespace microcare::adapter {
namespace {

TEST(BatchCompany, TheFirstWriteDoesNotWaitForCompanyNobodyHasAnnounced) {
    BatchCompany company(64);
    EXPECT_TRUE(company.Enough(1));
}

TEST(BatchCompany, WaitsForAsManyAsTheLastBatchTook) {
    BatchCompany company(64);
    company.Took(20);
    EXPECT_FALSE(company.Enough(19));
    EXPECT_TRUE(company.Enough(20));
    company.Took(3);  // the load fell: a smaller batch is enough
    EXPECT_TRUE(company.Enough(3));
}

TEST(BatchCompany, NeverWaitsForMoreThanItsMost) {
    BatchCompany company(64);
    company.Took(500);
    EXPECT_FALSE(company.Enough(63));
    EXPECT_TRUE(company.Enough(64));
}

TEST(BatchCompany, ABatchOfReadsOnlyStillLetsTheNextWriteGoAlone) {
    BatchCompany company(64);
    company.Took(0);
    EXPECT_TRUE(company.Enough(1));
}

}  // namespace
}  // namespace microcare::adapter
