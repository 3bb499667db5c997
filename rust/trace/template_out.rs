//! The template being written: spacing between tokens, numbered placeholders, and the
//! squashing of constant lists (`in ($1 /*, ... */)`). The scanner (templatize.rs) decides
//! what each token is; this decides how it is written.

use crate::sqllex::{in_class, IDENT_CONT};

/// What the previous emitted token was; decides spacing and unary signs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Prev {
    Start,
    /// A keyword after which an operand is expected (`select`, `where`, `and`, ...).
    Keyword,
    /// Any other word (identifier or keyword that ends an operand, like `null`).
    Ident,
    /// Constant, parameter, quoted identifier, `)` or `]`.
    Operand,
    Op,
    Open,
    Comma,
    /// `.` or `::`: glue to the next token.
    Glue,
    Semi,
    Other,
}

impl Prev {
    pub(super) fn expects_operand(self) -> bool {
        matches!(
            self,
            Prev::Start
                | Prev::Keyword
                | Prev::Op
                | Prev::Open
                | Prev::Comma
                | Prev::Semi
                | Prev::Other
        )
    }
}

pub(super) struct Emitter<'o> {
    pub(super) out: &'o mut Vec<u8>,
    pub(super) prev: Prev,
    placeholders: u32,
    /// Bracket nesting depth.
    depth: u32,
    /// Open `IN (` / `ARRAY[` lists that may be squashed, innermost last.
    lists: [OpenList; MAX_LISTS],
    n_lists: usize,
}

/// Nested squashable lists tracked at once; deeper ones are left as they are.
const MAX_LISTS: usize = 8;

#[derive(Clone, Copy, Default)]
struct OpenList {
    depth: u32,
    /// Position in the output just after the bracket.
    start: usize,
    /// Placeholders emitted before the list.
    before: u32,
}

impl<'o> Emitter<'o> {
    pub(super) fn new(out: &'o mut Vec<u8>) -> Emitter<'o> {
        Emitter {
            out,
            prev: Prev::Start,
            placeholders: 0,
            depth: 0,
            lists: [OpenList::default(); MAX_LISTS],
            n_lists: 0,
        }
    }

    #[inline]
    pub(super) fn space_before(&mut self, glue_left: bool) {
        if glue_left || matches!(self.prev, Prev::Start | Prev::Open | Prev::Glue) {
            return;
        }
        self.out.push(b' ');
    }

    /// Whether the output ends with the keyword `w` (not part of a longer or qualified name).
    fn ends_with_word(&self, w: &[u8]) -> bool {
        let o = &self.out;
        o.ends_with(w)
            && (o.len() == w.len() || {
                let before = o[o.len() - w.len() - 1];
                !in_class(before, IDENT_CONT) && before != b'.' && before != b'"'
            })
    }

    pub(super) fn open(&mut self, c: u8) {
        // `a[`, `f(` and `t1(` glue; `in (`, `values (`, `) (` keep their space.
        let glue = c == b'[' || self.prev == Prev::Ident;
        let list = if c == b'(' {
            self.prev == Prev::Keyword && self.ends_with_word(b"in")
        } else {
            matches!(self.prev, Prev::Ident | Prev::Keyword) && self.ends_with_word(b"array")
        };
        self.space_before(glue);
        self.out.push(c);
        self.prev = Prev::Open;
        self.depth += 1;
        if list && self.n_lists < MAX_LISTS {
            self.lists[self.n_lists] = OpenList {
                depth: self.depth,
                start: self.out.len(),
                before: self.placeholders,
            };
            self.n_lists += 1;
        }
    }

    pub(super) fn close(&mut self, c: u8) {
        if self.n_lists > 0 && self.lists[self.n_lists - 1].depth == self.depth {
            self.n_lists -= 1;
            let l = self.lists[self.n_lists];
            self.squash(l);
        }
        self.depth = self.depth.saturating_sub(1);
        self.space_before(true);
        self.out.push(c);
        self.prev = Prev::Operand;
    }

    /// Replaces the list's `$a, $b, ...` by `$a /*, ... */` if it holds placeholders only.
    fn squash(&mut self, l: OpenList) {
        let items = self.placeholders - l.before;
        let body = &self.out[l.start..];
        let dollars = body.iter().filter(|&&b| b == b'$').count();
        let only_placeholders = items > 0
            && dollars == items as usize
            && body.first() == Some(&b'$')
            && body
                .iter()
                .all(|&b| b.is_ascii_digit() || matches!(b, b'$' | b',' | b' '));
        if !only_placeholders {
            return;
        }
        self.out.truncate(l.start);
        self.placeholders = l.before;
        self.prev = Prev::Open;
        self.placeholder();
        self.out.extend_from_slice(b" /*, ... */");
    }

    pub(super) fn placeholder(&mut self) {
        self.space_before(false);
        self.placeholders += 1;
        self.out.push(b'$');
        let num = itoa_buf(self.placeholders);
        self.out.extend_from_slice(num.as_slice());
        self.prev = Prev::Operand;
    }
}

struct SmallNum {
    bytes: [u8; 10],
    len: usize,
}

impl SmallNum {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[10 - self.len..]
    }
}

fn itoa_buf(mut n: u32) -> SmallNum {
    let mut s = SmallNum {
        bytes: [0; 10],
        len: 0,
    };
    loop {
        s.len += 1;
        s.bytes[10 - s.len] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return s;
        }
    }
}
