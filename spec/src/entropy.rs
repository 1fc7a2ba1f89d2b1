//! Deterministic entropy for every checker (docs/conventions.md#randomness-is-an-argument):
//! the core takes its randomness as an argument, so a test passes bytes that repeat from
//! run to run and still differ from draw to draw.
//!
//! * [`Draws`]: one counter per *minter* (each browser, the registrar, each party at the
//!   token endpoint), for the World, where steps of different actors must commute so that
//!   two interleavings meet in one state (`spec/README.md`, "The actors").
//! * [`SplitMix64`]: one stream, for the fixtures that run a fixed sequence of steps (the
//!   fuzz crate's fixture and hostile world, the property tests, the benchmarks).

use consent_gate::Entropy;

/// The deterministic entropy source for one step: fill `n` of a step by minter `tag`
/// whose `seq`-th minting step this is. Distinct (tag, seq, n) give distinct bytes, and
/// the bytes depend on nothing else (docs/conventions.md#randomness-is-an-argument).
#[derive(Debug)]
pub struct Draws {
    tag: u8,
    seq: u32,
    pub(crate) fills: u32,
}

impl Draws {
    /// The draws of the `seq`-th minting step of minter `tag`.
    pub fn new(tag: usize, seq: u32) -> Self {
        Self {
            tag: u8::try_from(tag).unwrap_or(u8::MAX),
            seq,
            fills: 0,
        }
    }
}

impl Entropy for Draws {
    fn fill(&mut self, dest: &mut [u8]) {
        self.fills += 1;
        let mut head = [0u8; 9];
        head[0] = self.tag;
        head[1..5].copy_from_slice(&self.seq.to_be_bytes());
        head[5..9].copy_from_slice(&self.fills.to_be_bytes());
        for (i, b) in dest.iter_mut().enumerate() {
            // The head makes fills distinct; the rest is a fixed pattern.
            let pattern = u8::try_from(i % 251).unwrap_or(0).wrapping_mul(37);
            *b = head.get(i).copied().unwrap_or(pattern);
        }
    }
}

/// A SplitMix64 stream: every fill takes the next values (8 bytes each), so every draw
/// differs and every run replays. The state is public so that a plain-data world can keep
/// it between steps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Fills `dest` with the next values of the stream.
    pub fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

impl Entropy for SplitMix64 {
    fn fill(&mut self, dest: &mut [u8]) {
        SplitMix64::fill(self, dest);
    }
}
