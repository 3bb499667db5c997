//! Comment text and random strings.
//!
//! As in the specification (clause 4.2.2.10), comments are substrings of a pool of sentences
//! produced by the TPC-H grammar; a comment of length `[min, max]` starts at a random offset
//! of the pool. The pool is built once per generator from its seed.

use super::dists::{self, Weighted};
use crate::benchmarks::rng::Rng;

/// Size of the sentence pool. dbgen uses 300 MB; a few MB give the same word statistics.
pub const POOL_BYTES: usize = 4 << 20;

/// Characters of v-strings (clause 4.2.2.7: at least 64 distinct characters).
const VSTRING_ALPHABET: &[u8; 64] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,.";

/// A weighted list flattened so that a uniform index into `slots` picks with the weights.
struct Picker {
    words: Vec<&'static str>,
    slots: Vec<u16>,
}

impl Picker {
    fn new(list: Weighted) -> Picker {
        let mut slots = Vec::new();
        for (i, (_, w)) in list.iter().enumerate() {
            slots.extend(std::iter::repeat_n(i as u16, *w as usize));
        }
        Picker {
            words: list.iter().map(|w| w.0).collect(),
            slots,
        }
    }

    #[inline]
    fn pick(&self, rng: &mut Rng) -> &'static str {
        self.words[self.slots[rng.index(self.slots.len())] as usize]
    }
}

struct Grammar {
    nouns: Picker,
    verbs: Picker,
    adjectives: Picker,
    adverbs: Picker,
    prepositions: Picker,
    auxiliaries: Picker,
    terminators: Picker,
}

impl Grammar {
    fn new() -> Grammar {
        Grammar {
            nouns: Picker::new(dists::NOUNS),
            verbs: Picker::new(dists::VERBS),
            adjectives: Picker::new(dists::ADJECTIVES),
            adverbs: Picker::new(dists::ADVERBS),
            prepositions: Picker::new(dists::PREPOSITIONS),
            auxiliaries: Picker::new(dists::AUXILIARIES),
            terminators: Picker::new(dists::TERMINATORS),
        }
    }

    fn word(out: &mut String, w: &str) {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push_str(w);
    }

    /// noun phrase: N | J N | J, J N | D J N  (weights 10, 20, 10, 50)
    fn noun_phrase(&self, rng: &mut Rng, out: &mut String) {
        match rng.range(0, 89) {
            0..=9 => {}
            10..=29 => Self::word(out, self.adjectives.pick(rng)),
            30..=39 => {
                Self::word(out, self.adjectives.pick(rng));
                out.push(',');
                Self::word(out, self.adjectives.pick(rng));
            }
            _ => {
                Self::word(out, self.adverbs.pick(rng));
                Self::word(out, self.adjectives.pick(rng));
            }
        }
        Self::word(out, self.nouns.pick(rng));
    }

    /// verb phrase: V | X V | V D | X V D  (weights 30, 1, 40, 1)
    fn verb_phrase(&self, rng: &mut Rng, out: &mut String) {
        let form = rng.range(0, 71);
        if form == 30 || form == 71 {
            Self::word(out, self.auxiliaries.pick(rng));
        }
        Self::word(out, self.verbs.pick(rng));
        if form >= 31 {
            Self::word(out, self.adverbs.pick(rng));
        }
    }

    fn prepositional_phrase(&self, rng: &mut Rng, out: &mut String) {
        Self::word(out, self.prepositions.pick(rng));
        Self::word(out, "the");
        self.noun_phrase(rng, out);
    }

    /// sentence: N V T | N V P T | N V N T | N P V N T | N P V P T  (weights 3, 3, 3, 1, 1)
    fn sentence(&self, rng: &mut Rng, out: &mut String) {
        let form = rng.range(0, 10);
        self.noun_phrase(rng, out);
        if form >= 9 {
            self.prepositional_phrase(rng, out);
        }
        self.verb_phrase(rng, out);
        match form {
            3..=5 | 10 => self.prepositional_phrase(rng, out),
            6..=9 => self.noun_phrase(rng, out),
            _ => {}
        }
        out.push_str(self.terminators.pick(rng));
        out.push(' ');
    }
}

/// The sentence pool comments are cut from.
pub struct TextPool {
    text: Vec<u8>,
}

impl TextPool {
    pub fn new(seed: u64, bytes: usize) -> TextPool {
        let grammar = Grammar::new();
        let mut rng = Rng::for_row(seed, 0x7E47, 0);
        let mut text = String::with_capacity(bytes + 256);
        while text.len() < bytes {
            grammar.sentence(&mut rng, &mut text);
        }
        text.truncate(bytes);
        TextPool {
            text: text.into_bytes(),
        }
    }

    /// A comment of random length in `[min, max]` (max must be below the pool size).
    #[inline]
    pub fn comment(&self, rng: &mut Rng, min: usize, max: usize) -> &[u8] {
        let len = rng.range(min as i64, max as i64) as usize;
        self.slice(rng, len)
    }

    /// `len` bytes of pool text from a random offset.
    #[inline]
    pub fn slice(&self, rng: &mut Rng, len: usize) -> &[u8] {
        let start = rng.index(self.text.len() - len + 1);
        &self.text[start..start + len]
    }
}

/// A v-string: random characters of the alphabet, length uniform in `[min, max]`.
#[inline]
pub fn vstring(rng: &mut Rng, min: usize, max: usize, out: &mut Vec<u8>) {
    let len = rng.range(min as i64, max as i64) as usize;
    let mut bits = 0u64;
    let mut left = 0;
    for _ in 0..len {
        if left == 0 {
            bits = rng.next_u64();
            left = 10;
        }
        out.push(VSTRING_ALPHABET[(bits & 63) as usize]);
        bits >>= 6;
        left -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_grammar_text_and_deterministic() {
        let a = TextPool::new(1, 1 << 16);
        let b = TextPool::new(1, 1 << 16);
        let c = TextPool::new(2, 1 << 16);
        assert_eq!(a.text, b.text);
        assert_ne!(a.text, c.text);
        let s = std::str::from_utf8(&a.text).unwrap();
        for word in ["special", "requests", "packages", "furiously", "the"] {
            assert!(s.contains(word), "pool lacks {word}");
        }
        assert!(!s.contains(['\t', '\n', '\\']));
        let mut rng = Rng::for_row(3, 3, 3);
        for _ in 0..1000 {
            let c = a.comment(&mut rng, 10, 43);
            assert!((10..=43).contains(&c.len()));
        }
    }

    #[test]
    fn vstring_lengths_and_alphabet() {
        let mut rng = Rng::for_row(1, 1, 1);
        for _ in 0..1000 {
            let mut out = Vec::new();
            vstring(&mut rng, 10, 40, &mut out);
            assert!((10..=40).contains(&out.len()));
            assert!(out.iter().all(|b| VSTRING_ALPHABET.contains(b)));
        }
    }
}
