//! Command names looked up in any case without a string compare: each
//! known name is upper-cased into a fixed array of `N` bytes (zero-padded)
//! and kept in an open-addressed table at most a quarter full, so a
//! look-up is one pass over the name's bytes, one multiply and, nearly
//! always, one comparison of `N` bytes. Only known names are ever
//! inserted, so no request can lengthen a probe.

/// Known names (up to `N` bytes) and what each stands for.
pub(crate) struct NameTable<const N: usize, V: 'static> {
    slots: Vec<Option<Entry<N, V>>>,
    /// `64 - log2(slots.len())`: the multiply's top bits are the slot.
    shift: u32,
}

struct Entry<const N: usize, V> {
    key: [u8; N],
    name: &'static str,
    value: V,
}

impl<const N: usize, V: Copy> NameTable<N, V> {
    /// The table of `names`; a name longer than `N` bytes is left out
    /// (callers test that none is).
    pub(crate) fn new(names: impl IntoIterator<Item = (&'static str, V)>) -> Self {
        let all: Vec<Entry<N, V>> = names
            .into_iter()
            .filter_map(|(name, value)| {
                Some(Entry {
                    key: key(name.as_bytes())?,
                    name,
                    value,
                })
            })
            .collect();
        let len = (all.len() * 4).next_power_of_two().max(2);
        let shift = 64 - len.trailing_zeros();
        let mut slots: Vec<Option<Entry<N, V>>> =
            std::iter::repeat_with(|| None).take(len).collect();
        for entry in all {
            let mut i = slot(&entry.key, shift);
            while slots[i].is_some() {
                i = (i + 1) & (len - 1);
            }
            slots[i] = Some(entry);
        }
        Self { slots, shift }
    }

    /// The name `name` spells (in any case) as the table spells it, and
    /// its value.
    pub(crate) fn get(&self, name: &[u8]) -> Option<(&'static str, V)> {
        let key = key::<N>(name)?;
        let mask = self.slots.len() - 1;
        let mut i = slot(&key, self.shift);
        loop {
            match self.slots.get(i)? {
                // A name padded with NUL bytes packs like a shorter one.
                Some(e) if e.key == key && e.name.len() == name.len() => {
                    return Some((e.name, e.value))
                }
                Some(_) => i = (i + 1) & mask,
                None => return None,
            }
        }
    }
}

/// `name` upper-cased into `N` bytes, copied and upper-cased in one pass
/// (no call for a few bytes); None if it is longer.
fn key<const N: usize>(name: &[u8]) -> Option<[u8; N]> {
    let mut key = [0u8; N];
    if name.len() > N {
        return None;
    }
    for (to, from) in key.iter_mut().zip(name) {
        *to = from.to_ascii_uppercase();
    }
    Some(key)
}

/// The slot of `key`: its 8-byte words folded into one and multiplied by
/// the golden ratio, whose top bits spread well.
fn slot<const N: usize>(key: &[u8; N], shift: u32) -> usize {
    let mut folded = 0u64;
    for word in key.chunks(8) {
        let mut w = [0u8; 8];
        w[..word.len()].copy_from_slice(word);
        folded = folded.rotate_left(5) ^ u64::from_le_bytes(w);
    }
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_found_in_any_case_and_nothing_else() {
        let names = ["GET", "SET", "SETEX", "SESSION.OPEN", "SESSION.CLOSE", "A"];
        let table: NameTable<16, usize> = NameTable::new(names.iter().copied().zip(0..));
        for (i, name) in names.iter().enumerate() {
            assert_eq!(table.get(name.as_bytes()), Some((*name, i)));
            let lower = name.to_ascii_lowercase();
            assert_eq!(table.get(lower.as_bytes()), Some((*name, i)));
        }
        for miss in [
            "",
            "GE",
            "GETT",
            "GET\0",
            "SESSION.OPE",
            "B",
            "averyveryverylongname",
        ] {
            assert_eq!(table.get(miss.as_bytes()), None, "{miss:?}");
        }
    }

    #[test]
    fn a_name_longer_than_the_key_is_left_out() {
        let table: NameTable<4, ()> = NameTable::new([("LONGER", ()), ("OK", ())]);
        assert_eq!(table.get(b"LONGER"), None);
        assert_eq!(table.get(b"ok"), Some(("OK", ())));
    }
}
