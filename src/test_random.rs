//! A reproducible pseudo-random sequence for the deterministic fuzz passes that run with
//! `cargo test` (`jmap/fuzz_tests.rs`, `smtp/session/fuzz_tests.rs`).

/// xorshift64*: small, fast, and reproducible from its seed.
pub(crate) struct Generator(pub(crate) u64);

impl Generator {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}
