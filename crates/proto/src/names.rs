//! Command names found in one binary search: each name upper-cased and
//! packed into two numbers, so a step of the search compares numbers
//! where a string compare would be a call (a linear scan of the names,
//! and a search comparing strings, both cost more per request).

/// Names of up to this many bytes are found; a longer one is no name
/// (a table's test checks none of its own is longer).
pub(crate) const MAX_NAME: usize = 32;

type Key = (u128, u128);

/// A table of names, each with its `T`.
pub(crate) struct Names<T: Copy> {
    sorted: Vec<(Key, &'static str, T)>,
}

impl<T: Copy> Names<T> {
    /// The table of `names` (upper case); names too long are left out.
    pub(crate) fn new(names: impl IntoIterator<Item = (&'static str, T)>) -> Self {
        let mut sorted: Vec<_> = names
            .into_iter()
            .filter_map(|(n, t)| Some((key(n.as_bytes())?, n, t)))
            .collect();
        sorted.sort_unstable_by_key(|(k, ..)| *k);
        Self { sorted }
    }

    /// The name `name` spells in any case (as the table has it), and its
    /// `T`.
    pub(crate) fn find(&self, name: &[u8]) -> Option<(&'static str, T)> {
        let k = key(name)?;
        let i = self.sorted.binary_search_by_key(&k, |(k, ..)| *k).ok()?;
        let (_, known, t) = self.sorted[i];
        // A name padded with NUL bytes packs like a shorter one.
        (known.len() == name.len()).then_some((known, t))
    }
}

/// `name` upper-cased and packed, in the names' order.
fn key(name: &[u8]) -> Option<Key> {
    let mut buf = [0u8; MAX_NAME];
    buf.get_mut(..name.len())?.copy_from_slice(name);
    buf.make_ascii_uppercase();
    let (hi, lo) = buf.split_at(16);
    Some((
        u128::from_be_bytes(hi.try_into().ok()?),
        u128::from_be_bytes(lo.try_into().ok()?),
    ))
}
