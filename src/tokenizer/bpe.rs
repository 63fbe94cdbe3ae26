//! Byte-pair encoding over a vocabulary held compactly.
//!
//! `tokenizers`' BPE keeps every token twice, as a `String` in two hash maps (text → id and
//! id → text), and each merge in a third: with the allocator's overhead about 150 bytes a
//! token, 7.5 MB for SmolLM2's 49 k tokens and 23 MB for Qwen's 151 k, held for as long as the
//! model is (the page's worker too). Here every token's text sits in one buffer, found through
//! a hash table of 4-byte indices, and the merges are a sorted array searched by bisection:
//! about 40 bytes a token.
//!
//! The merging is `tokenizers`' own (0.23's `BPE::merge_word` and `Word::merge_all`, without
//! dropout: a file with dropout keeps `tokenizers`' BPE, see `super::model`), checked against it
//! in the tests below and, on real vocabularies, in `tests/tokenizer_parity.rs`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use serde::ser::{SerializeMap, SerializeStruct};
use tokenizers::Token;

/// A byte-level (or SentencePiece-style) BPE: its vocabulary, merges and options.
pub struct Bpe {
    /// Every token's text, back to back, in the order the file listed them.
    text: String,
    /// Each token, sorted by id: its id and where its text is in `text`.
    tokens: Vec<Entry>,
    /// Indices into `tokens`, hashed by the token's text.
    by_text: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Each merge, sorted by its pair of ids.
    merges: Vec<MergeRule>,
    options: Options,
}

#[derive(Clone, Copy)]
struct Entry {
    id: u32,
    start: u32,
    len: u32,
}

#[derive(Clone, Copy)]
struct MergeRule {
    pair: (u32, u32),
    /// Its place in the file's list: lower merges first.
    rank: u32,
    /// The token the two make.
    new_id: u32,
}

/// A BPE's settings, as `tokenizer.json` names them.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub unk_token: Option<String>,
    pub continuing_subword_prefix: Option<String>,
    pub end_of_word_suffix: Option<String>,
    pub fuse_unk: bool,
    pub byte_fallback: bool,
    pub ignore_merges: bool,
}

/// The vocabulary as it is read: each token's text appended, with its id.
#[derive(Default)]
pub struct VocabBuilder {
    text: String,
    tokens: Vec<Entry>,
}

impl VocabBuilder {
    /// Adds `token` with `id`. A text given twice keeps its last id (as a JSON object's
    /// repeated key does when `serde` reads it into a map).
    pub fn push(&mut self, token: &str, id: u32) -> Result<(), String> {
        let start = u32::try_from(self.text.len()).map_err(|_| "the vocabulary's text passes 4 GB".to_string())?;
        let len = u32::try_from(token.len()).map_err(|_| "a token passes 4 GB".to_string())?;
        start.checked_add(len).ok_or_else(|| "the vocabulary's text passes 4 GB".to_string())?;
        self.text.push_str(token);
        self.tokens.push(Entry { id, start, len });
        Ok(())
    }

    /// The texts and ids pushed so far, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.tokens.iter().map(|e| (&self.text[e.start as usize..(e.start + e.len) as usize], e.id))
    }

    /// One past the largest id (0 for none).
    pub fn id_bound(&self) -> u32 {
        super::json::vocab_bound(self.tokens.iter().map(|e| &e.id))
    }
}

impl Bpe {
    /// The BPE of `vocab` and `merges` (pairs of token texts, in rank order). A merge whose
    /// halves, or the token they make, are not in the vocabulary is an error, as in `tokenizers`.
    pub fn new<'a>(
        vocab: VocabBuilder,
        merges: impl IntoIterator<Item = (&'a str, &'a str)>,
        options: Options,
    ) -> Result<Bpe, String> {
        let VocabBuilder { mut text, mut tokens } = vocab;
        text.shrink_to_fit();
        let hasher = DefaultHashBuilder::default();
        let text_of = |e: &Entry| &text.as_bytes()[e.start as usize..(e.start + e.len) as usize];
        let hash = |e: &Entry| hasher.hash_one(text_of(e));
        // A text listed twice keeps its last id: each text's last entry, in the file's order.
        let mut last: HashTable<u32> = HashTable::with_capacity(tokens.len());
        let mut repeated = false;
        for (i, e) in tokens.iter().enumerate() {
            let same_text = |&j: &u32| text_of(&tokens[j as usize]) == text_of(e);
            match last.entry(hash(e), same_text, |&j| hash(&tokens[j as usize])) {
                hashbrown::hash_table::Entry::Occupied(mut o) => {
                    *o.get_mut() = i as u32;
                    repeated = true;
                }
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(i as u32);
                }
            }
        }
        if repeated {
            let mut keep: Vec<u32> = last.iter().copied().collect();
            keep.sort_unstable();
            tokens = keep.into_iter().map(|i| tokens[i as usize]).collect();
        }
        tokens.sort_by_key(|e| e.id);
        tokens.shrink_to_fit();
        // Now indices into the tokens as kept, by id.
        last.clear();
        let mut by_text = last;
        for (i, e) in tokens.iter().enumerate() {
            by_text.insert_unique(hash(e), i as u32, |&j| hash(&tokens[j as usize]));
        }
        by_text.shrink_to_fit(|&j| hash(&tokens[j as usize]));
        let mut bpe = Bpe { text, tokens, by_text, hasher, merges: Vec::new(), options };

        let prefix_len = bpe.options.continuing_subword_prefix.as_deref().map_or(0, str::len);
        let missing = |t: &[u8]| format!("Merge token `{}` out of vocabulary", String::from_utf8_lossy(t));
        let mut joined = Vec::new();
        let mut rules = Vec::new();
        for (rank, (a, b)) in merges.into_iter().enumerate() {
            let a_id = bpe.id_of(a.as_bytes()).ok_or_else(|| missing(a.as_bytes()))?;
            let b_id = bpe.id_of(b.as_bytes()).ok_or_else(|| missing(b.as_bytes()))?;
            // The token they make: `a`, then `b` without its continuing-subword prefix.
            let b_rest = b.as_bytes().get(prefix_len..).ok_or_else(|| {
                format!("the merge {a:?} + {b:?}: {b:?} is shorter than the continuing-subword prefix")
            })?;
            joined.clear();
            joined.extend_from_slice(a.as_bytes());
            joined.extend_from_slice(b_rest);
            let new_id = bpe.id_of(&joined).ok_or_else(|| missing(&joined))?;
            let rank = u32::try_from(rank).map_err(|_| "more than 4 billion merges".to_string())?;
            rules.push(MergeRule { pair: (a_id, b_id), rank, new_id });
        }
        // A pair listed twice keeps its last rank (as `tokenizers`' map of merges does).
        rules.sort_by_key(|m| (m.pair, Reverse(m.rank)));
        rules.dedup_by_key(|m| m.pair);
        rules.shrink_to_fit();
        bpe.merges = rules;
        Ok(bpe)
    }

    /// How many tokens the vocabulary holds.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.id_of(token.as_bytes())
    }

    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        let i = self.tokens.binary_search_by_key(&id, |e| e.id).ok()?;
        Some(self.text_at(i))
    }

    /// Every token and its id, in id order.
    pub fn vocab(&self) -> impl Iterator<Item = (&str, u32)> {
        (0..self.tokens.len()).map(|i| (self.text_at(i), self.tokens[i].id))
    }

    fn text_at(&self, i: usize) -> &str {
        let e = self.tokens[i];
        &self.text[e.start as usize..(e.start + e.len) as usize]
    }

    fn id_of(&self, token: &[u8]) -> Option<u32> {
        let i = self.by_text.find(self.hasher.hash_one(token), |&i| self.text_at(i as usize).as_bytes() == token)?;
        Some(self.tokens[*i as usize].id)
    }

    /// The merge of `pair`, if any: its rank and the id it makes.
    fn merge(&self, pair: (u32, u32)) -> Option<(u32, u32)> {
        let i = self.merges.binary_search_by_key(&pair, |m| m.pair).ok()?;
        Some((self.merges[i].rank, self.merges[i].new_id))
    }

    /// `word` (one pre-token) as tokens, with their byte offsets in it.
    pub fn tokenize(&self, word: &str) -> Result<Vec<Token>, String> {
        if word.is_empty() {
            return Ok(Vec::new());
        }
        if self.options.ignore_merges
            && let Some(id) = self.token_to_id(word)
        {
            return Ok(vec![Token::new(id, word.to_string(), (0, word.len()))]);
        }
        let mut symbols = self.symbols(word)?;
        self.merge_all(&mut symbols);
        let mut pos = 0;
        Ok(symbols
            .iter()
            .map(|s| {
                let offsets = (pos, pos + s.len);
                pos += s.len;
                Token::new(s.id, self.id_to_token(s.id).unwrap_or_default().to_string(), offsets)
            })
            .collect())
    }

    /// `word` as its characters' tokens before any merge (`merge_word`'s first half): a
    /// character the vocabulary lacks as its bytes' `<0xNN>` tokens (byte fallback), or as the
    /// unknown token (runs of them fused into one if `fuse_unk`), or dropped when there is none.
    fn symbols(&self, word: &str) -> Result<Vec<Symbol>, String> {
        let o = &self.options;
        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        let mut unk: Option<(u32, usize)> = None;
        let mut piece = String::new();
        let mut chars = word.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let is_last = chars.peek().is_none();
            let byte_len = c.len_utf8();
            piece.clear();
            if i > 0
                && let Some(p) = &o.continuing_subword_prefix
            {
                piece.push_str(p);
            }
            piece.push(c);
            if is_last && let Some(s) = &o.end_of_word_suffix {
                piece.push_str(s);
            }
            if let Some(id) = self.token_to_id(&piece) {
                if let Some((unk_id, unk_len)) = unk.take() {
                    push(&mut symbols, unk_id, unk_len);
                }
                push(&mut symbols, id, byte_len);
                continue;
            }
            if o.byte_fallback {
                let bytes: Option<Vec<u32>> = piece.bytes().map(|b| self.token_to_id(&format!("<{b:#04X}>"))).collect();
                if let Some(bytes) = bytes {
                    bytes.into_iter().for_each(|id| push(&mut symbols, id, 1));
                    continue;
                }
            }
            if let Some(unk_token) = &o.unk_token {
                let unk_id = || {
                    self.token_to_id(unk_token)
                        .ok_or_else(|| format!("Unk token `{unk_token}` not found in the vocabulary"))
                };
                unk = match (unk, o.fuse_unk) {
                    (Some((id, len)), true) => Some((id, len + byte_len)),
                    (Some((id, len)), false) => {
                        push(&mut symbols, id, len);
                        Some((unk_id()?, byte_len))
                    }
                    (None, _) => Some((unk_id()?, byte_len)),
                };
            }
        }
        if let Some((unk_id, unk_len)) = unk {
            push(&mut symbols, unk_id, unk_len);
        }
        Ok(symbols)
    }

    /// Merges `symbols` in place, lowest rank first and leftmost first among equals
    /// (`Word::merge_all`): merged-away symbols keep length 0 until the end, so a queued merge
    /// whose pair has since changed is recognised and skipped.
    fn merge_all(&self, symbols: &mut Vec<Symbol>) {
        // (rank, position, new id), smallest first.
        let mut queue: BinaryHeap<Reverse<(u32, usize, u32)>> = symbols
            .windows(2)
            .enumerate()
            .filter_map(|(pos, w)| self.merge((w[0].id, w[1].id)).map(|(rank, new_id)| Reverse((rank, pos, new_id))))
            .collect();
        while let Some(Reverse((_, pos, new_id))) = queue.pop() {
            let s = symbols[pos];
            if s.len == 0 || s.next == NONE {
                continue;
            }
            let right = symbols[s.next];
            if self.merge((s.id, right.id)).is_none_or(|(_, id)| id != new_id) {
                continue;
            }
            symbols[pos] = Symbol { id: new_id, prev: s.prev, next: right.next, len: s.len + right.len };
            symbols[s.next].len = 0;
            if right.next != NONE {
                symbols[right.next].prev = pos;
            }
            let current = symbols[pos];
            if current.prev != NONE
                && let Some((rank, id)) = self.merge((symbols[current.prev].id, current.id))
            {
                queue.push(Reverse((rank, current.prev, id)));
            }
            if current.next != NONE
                && let Some((rank, id)) = self.merge((current.id, symbols[current.next].id))
            {
                queue.push(Reverse((rank, pos, id)));
            }
        }
        symbols.retain(|s| s.len != 0);
    }
}

/// No neighbour.
const NONE: usize = usize::MAX;

/// A token of the word being merged, linked to its neighbours; `len` is its bytes in the word.
#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: usize,
    next: usize,
    len: usize,
}

fn push(symbols: &mut Vec<Symbol>, id: u32, len: usize) {
    let n = symbols.len();
    if let Some(last) = symbols.last_mut() {
        last.next = n;
    }
    symbols.push(Symbol { id, prev: if n == 0 { NONE } else { n - 1 }, next: NONE, len });
}

/// Written as `tokenizers` writes its BPE, so a `tokenizer.json` this wrote reads back the same
/// in either.
impl serde::Serialize for Bpe {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = &self.options;
        let mut m = s.serialize_struct("BPE", 10)?;
        m.serialize_field("type", "BPE")?;
        m.serialize_field("dropout", &None::<f32>)?;
        m.serialize_field("unk_token", &o.unk_token)?;
        m.serialize_field("continuing_subword_prefix", &o.continuing_subword_prefix)?;
        m.serialize_field("end_of_word_suffix", &o.end_of_word_suffix)?;
        m.serialize_field("fuse_unk", &o.fuse_unk)?;
        m.serialize_field("byte_fallback", &o.byte_fallback)?;
        m.serialize_field("ignore_merges", &o.ignore_merges)?;
        m.serialize_field("vocab", &Vocab(self))?;
        m.serialize_field("merges", &Merges(self))?;
        m.end()
    }
}

/// The vocabulary as a `{token: id}` object, in id order.
struct Vocab<'a>(&'a Bpe);

impl serde::Serialize for Vocab<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (token, id) in self.0.vocab() {
            m.serialize_entry(token, &id)?;
        }
        m.end()
    }
}

/// The merges as `[a, b]` pairs, in rank order.
struct Merges<'a>(&'a Bpe);

impl serde::Serialize for Merges<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bpe = self.0;
        let mut ranked: Vec<&MergeRule> = bpe.merges.iter().collect();
        ranked.sort_by_key(|m| m.rank);
        let text = |id| bpe.id_to_token(id).unwrap_or_default();
        s.collect_seq(ranked.into_iter().map(|m| (text(m.pair.0), text(m.pair.1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::Model;
    use tokenizers::models::bpe::BPE;

    /// Ours and `tokenizers`' BPE from the same vocabulary, merges and options.
    fn both(vocab: &[(&str, u32)], merges: &[(&str, &str)], o: &Options) -> (Bpe, BPE) {
        let mut v = VocabBuilder::default();
        vocab.iter().for_each(|&(t, id)| v.push(t, id).unwrap());
        let ours = Bpe::new(v, merges.iter().copied(), o.clone()).unwrap();
        let mut b = BPE::builder()
            .vocab_and_merges(
                vocab.iter().map(|&(t, id)| (t.to_string(), id)).collect::<tokenizers::models::bpe::Vocab>(),
                merges.iter().map(|&(a, b)| (a.to_string(), b.to_string())).collect(),
            )
            .cache_capacity(0)
            .fuse_unk(o.fuse_unk)
            .byte_fallback(o.byte_fallback)
            .ignore_merges(o.ignore_merges);
        if let Some(t) = &o.unk_token {
            b = b.unk_token(t.clone());
        }
        if let Some(p) = &o.continuing_subword_prefix {
            b = b.continuing_subword_prefix(p.clone());
        }
        if let Some(s) = &o.end_of_word_suffix {
            b = b.end_of_word_suffix(s.clone());
        }
        (ours, b.build().unwrap())
    }

    fn same(ours: &Bpe, theirs: &BPE, word: &str) {
        let a = ours.tokenize(word);
        let b = theirs.tokenize(word);
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{word:?}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{word:?}: ours {a:?}, tokenizers' {:?}", b.map_err(|e| e.to_string())),
        }
    }

    /// A vocabulary of every letter of `abc` and all their pairs and triples, with merges
    /// in a scrambled order, so that ranks, not lengths, decide: every word of up to seven
    /// letters, and with characters outside the vocabulary, tokenized the same.
    #[test]
    fn merges_as_tokenizers_does_on_every_short_word() {
        let letters = ["a", "b", "c"];
        let mut texts: Vec<String> = letters.iter().map(|s| s.to_string()).collect();
        let mut merges: Vec<(String, String)> = Vec::new();
        for x in letters {
            for y in letters {
                texts.push(format!("{x}{y}"));
                merges.push((x.into(), y.into()));
            }
        }
        for x in letters {
            for y in letters {
                for z in letters {
                    texts.push(format!("{x}{y}{z}"));
                    // Each triple made one way or the other.
                    let (l, r) = if [x, y, z].iter().map(|s| s.as_bytes()[0] as u32).sum::<u32>().is_multiple_of(2) {
                        (format!("{x}{y}"), z.to_string())
                    } else {
                        (x.to_string(), format!("{y}{z}"))
                    };
                    merges.push((l, r));
                }
            }
        }
        texts.extend(["<unk>", "<0x78>", "<0xC3>", "<0xA9>"].map(String::from));
        // A scrambled but fixed order of merges: pairs and triples interleaved.
        let n = merges.len();
        let merges: Vec<(String, String)> = (0..n).map(|i| merges[(i * 7) % n].clone()).collect();
        let vocab: Vec<(&str, u32)> = texts.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32)).collect();
        let merges: Vec<(&str, &str)> = merges.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let mut words = vec![String::new()];
        for len in 1..=7 {
            let mut next = Vec::new();
            for w in words.iter().filter(|w| w.chars().count() == len - 1) {
                for c in ["a", "b", "c"] {
                    next.push(format!("{w}{c}"));
                }
            }
            words.extend(next);
        }
        words.extend(["x", "axb", "éé", "xxa", "abxxcé"].map(String::from));
        let options = [
            Options::default(),
            Options { unk_token: Some("<unk>".into()), ..Options::default() },
            Options { unk_token: Some("<unk>".into()), fuse_unk: true, ..Options::default() },
            Options { unk_token: Some("<unk>".into()), byte_fallback: true, ..Options::default() },
            Options { ignore_merges: true, ..Options::default() },
            Options { unk_token: Some("<missing>".into()), ..Options::default() },
        ];
        for o in &options {
            let (ours, theirs) = both(&vocab, &merges, o);
            for w in &words {
                same(&ours, &theirs, w);
            }
        }
    }

    #[test]
    fn prefixes_and_suffixes_as_tokenizers_does() {
        let vocab =
            [("a", 0), ("b", 1), ("##a", 2), ("##b", 3), ("ab", 4), ("a</w>", 5), ("##b</w>", 6), ("ab</w>", 7)];
        let merges = [("a", "##b"), ("a", "##b</w>")];
        let prefix = Options { continuing_subword_prefix: Some("##".into()), ..Options::default() };
        let both_ends = Options { end_of_word_suffix: Some("</w>".into()), ..prefix.clone() };
        for o in [prefix, both_ends] {
            let (ours, theirs) = both(&vocab, &merges, &o);
            for w in ["a", "ab", "abab", "ba", "b", "aab"] {
                same(&ours, &theirs, w);
            }
        }
    }

    #[test]
    fn a_repeated_text_keeps_its_last_id_and_a_repeated_merge_its_last_rank() {
        let (ours, theirs) = both(&[("a", 0), ("b", 1), ("ab", 2), ("a", 3)], &[], &Options::default());
        assert_eq!(ours.token_to_id("a"), theirs.token_to_id("a"));
        assert_eq!(ours.token_to_id("a"), Some(3));
        assert_eq!(ours.id_to_token(0), None);
        let vocab = [("a", 0), ("b", 1), ("c", 2), ("ab", 3), ("bc", 4)];
        let (ours, theirs) = both(&vocab, &[("a", "b"), ("b", "c"), ("a", "b")], &Options::default());
        same(&ours, &theirs, "abc");
        assert_eq!(ours.tokenize("abc").unwrap()[1].id, 4, "b+c now ranks before a+b");
    }

    #[test]
    fn a_merge_outside_the_vocabulary_is_an_error() {
        let vocab = || {
            let mut v = VocabBuilder::default();
            [("a", 0), ("b", 1)].iter().for_each(|&(t, id)| v.push(t, id).unwrap());
            v
        };
        let err = Bpe::new(vocab(), [("a", "b")], Options::default()).err().unwrap();
        assert!(err.contains("`ab` out of vocabulary"), "{err}");
        let err = Bpe::new(vocab(), [("a", "z")], Options::default()).err().unwrap();
        assert!(err.contains("`z` out of vocabulary"), "{err}");
        let o = Options { continuing_subword_prefix: Some("###".into()), ..Options::default() };
        assert!(Bpe::new(vocab(), [("a", "b")], o).is_err());
    }

    #[test]
    fn written_as_tokenizers_writes_it() {
        let vocab = [("b", 1), ("a", 0), ("ab", 5)];
        let o = Options { unk_token: Some("a".into()), byte_fallback: true, ..Options::default() };
        let (ours, theirs) = both(&vocab, &[("a", "b")], &o);
        assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&theirs).unwrap());
        assert_eq!(ours.len(), 3);
    }
}
