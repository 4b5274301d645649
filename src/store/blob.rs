//! blob (in progress)

/// The blob part of the backend test suite.
pub mod suite {
    use crate::store::testsuite::SuiteTest;

    pub fn tests() -> Vec<SuiteTest> {
        Vec::new()
    }
}
