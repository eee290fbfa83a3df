//! A session's lock as a cluster keeps it: one `sessiond_lock` row per
//! id, its holders and its FIFO queue of waiters, each tagged with the
//! node (and that node's run) and the client. The rules are the embedded
//! store's (`sessiond_core`'s lock table): a write lock is exclusive, read
//! locks share; a request is granted at once only if it is compatible with
//! the holders and nobody is queued (no barging); a release grants the
//! head of the queue — one writer, or a run of readers; a lease that ran
//! out, or a node that died, frees its holds. The conformance suite runs
//! the same lock tests on both stores.

use bytes::Bytes;
use sessiond_core::{LockMode, NEVER};

/// Who holds or waits: a client of one run of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Party {
    pub(crate) node: String,
    pub(crate) instance: i64,
    pub(crate) client: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) key: u64,
    /// The queued request it was granted to (0: granted at once), so the
    /// waiting node can find its grant even if the wake-up was lost.
    pub(crate) seq: u64,
    pub(crate) mode: LockMode,
    pub(crate) party: Party,
    /// When the lease runs out, ms ([`NEVER`]: held until released, or its
    /// connection or node ends).
    pub(crate) lease_until_ms: u64,
    pub(crate) owner: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiter {
    /// The waiting node's number for the request.
    pub(crate) seq: u64,
    pub(crate) mode: LockMode,
    pub(crate) party: Party,
    pub(crate) lease_ms: u64,
    pub(crate) owner: Option<Bytes>,
}

/// One lock row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LockRow {
    /// The row's revision as read (0: there was no row).
    pub(crate) rev: i64,
    /// The last fencing key granted on this id: the next must be above.
    pub(crate) last_key: u64,
    pub(crate) holders: Vec<Holder>,
    pub(crate) waiters: Vec<Waiter>,
}

/// A grant made while pumping the queue: whose request, and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handed {
    pub(crate) node: String,
    pub(crate) seq: u64,
    pub(crate) key: u64,
}

/// What a request came to at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    Granted(u64),
    Queued,
    Busy,
}

impl LockRow {
    /// The mode the lock is held in, if it is held.
    pub(crate) fn mode(&self) -> Option<LockMode> {
        self.holders.first().map(|h| h.mode)
    }

    fn compatible(&self, mode: LockMode) -> bool {
        match mode {
            LockMode::Write => self.holders.is_empty(),
            LockMode::Read => self.holders.iter().all(|h| h.mode == LockMode::Read),
        }
    }

    /// Drops holders whose lease ran out and holders and waiters of nodes
    /// that are gone (`alive` says which parties' nodes still run).
    /// Whether anything changed.
    pub(crate) fn expire(&mut self, now: u64, alive: &dyn Fn(&Party) -> bool) -> bool {
        let before = (self.holders.len(), self.waiters.len());
        self.holders
            .retain(|h| h.lease_until_ms > now && alive(&h.party));
        self.waiters.retain(|w| alive(&w.party));
        before != (self.holders.len(), self.waiters.len())
    }

    /// Grants `key` (from `keys`, above every earlier key) to a new holder.
    #[allow(clippy::too_many_arguments)]
    fn grant(
        &mut self,
        seq: u64,
        mode: LockMode,
        party: Party,
        lease_ms: u64,
        owner: Option<Bytes>,
        now: u64,
        key: u64,
    ) {
        self.last_key = key;
        let lease_until_ms = if lease_ms == NEVER {
            NEVER
        } else {
            now.saturating_add(lease_ms)
        };
        self.holders.push(Holder {
            key,
            seq,
            mode,
            party,
            lease_until_ms,
            owner,
        });
    }

    /// Request `seq` (a number unique on its node): granted at once (with
    /// a key from `key`) if compatible and nobody is queued; else queued
    /// when `wait`, else busy.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ask(
        &mut self,
        mode: LockMode,
        party: Party,
        lease_ms: u64,
        owner: Option<Bytes>,
        (seq, wait): (u64, bool),
        now: u64,
        key: &mut dyn FnMut(u64) -> u64,
    ) -> Asked {
        if self.waiters.is_empty() && self.compatible(mode) {
            let k = key(self.last_key);
            self.grant(seq, mode, party, lease_ms, owner, now, k);
            return Asked::Granted(k);
        }
        if !wait {
            return Asked::Busy;
        }
        self.waiters.push(Waiter {
            seq,
            mode,
            party,
            lease_ms,
            owner,
        });
        Asked::Queued
    }

    /// Grants the head of the queue for as long as it is compatible: one
    /// writer, or a run of readers. The grants made.
    pub(crate) fn pump(&mut self, now: u64, key: &mut dyn FnMut(u64) -> u64) -> Vec<Handed> {
        let mut handed = Vec::new();
        while let Some(front) = self.waiters.first() {
            if !self.compatible(front.mode) {
                break;
            }
            let w = self.waiters.remove(0);
            let k = key(self.last_key);
            handed.push(Handed {
                node: w.party.node.clone(),
                seq: w.seq,
                key: k,
            });
            self.grant(w.seq, w.mode, w.party, w.lease_ms, w.owner, now, k);
        }
        handed
    }

    pub(crate) fn holder(&self, key: u64) -> Option<&Holder> {
        self.holders.iter().find(|h| h.key == key)
    }

    /// The hold granted to request `seq` of `node`, if it holds.
    pub(crate) fn granted_to(&self, node: &str, seq: u64) -> Option<&Holder> {
        self.holders
            .iter()
            .find(|h| h.seq == seq && h.party.node == node)
    }

    /// Whether request `seq` of `node` is still queued.
    pub(crate) fn is_queued(&self, node: &str, seq: u64) -> bool {
        self.waiters
            .iter()
            .any(|w| w.seq == seq && w.party.node == node)
    }

    /// Releases the holder with `key`; whether there was one.
    pub(crate) fn release(&mut self, key: u64) -> bool {
        let before = self.holders.len();
        self.holders.retain(|h| h.key != key);
        before != self.holders.len()
    }

    /// Turns a write hold into a read hold; whether `key` held it.
    pub(crate) fn downgrade(&mut self, key: u64) -> bool {
        match self.holders.iter_mut().find(|h| h.key == key) {
            Some(h) => {
                h.mode = LockMode::Read;
                true
            }
            None => false,
        }
    }

    /// Takes request `seq` of `node` out of the queue; whether it was there.
    pub(crate) fn cancel(&mut self, node: &str, seq: u64) -> bool {
        let before = self.waiters.len();
        self.waiters
            .retain(|w| !(w.seq == seq && w.party.node == node));
        before != self.waiters.len()
    }

    /// Drops every hold and wait of `party`; whether any was found.
    pub(crate) fn drop_party(&mut self, party: &Party) -> bool {
        let before = (self.holders.len(), self.waiters.len());
        self.holders.retain(|h| &h.party != party);
        self.waiters.retain(|w| &w.party != party);
        before != (self.holders.len(), self.waiters.len())
    }

    /// What the row counts for under the lock quotas: an entry (1, or 0
    /// when nobody holds or awaits it) and its bytes, as on one node.
    pub(crate) fn usage(&self, id_len: usize) -> (i64, i64) {
        if self.holders.is_empty() && self.waiters.is_empty() {
            return (0, 0);
        }
        let owner = |o: &Option<Bytes>| o.as_ref().map_or(0, Bytes::len);
        let bytes = sessiond_core::lock_bytes(
            id_len,
            self.holders.iter().map(|h| owner(&h.owner)),
            self.waiters.iter().map(|w| owner(&w.owner)),
        );
        (1, i64::try_from(bytes).unwrap_or(i64::MAX))
    }

    /// The latest lease of the holders (0: not held): until then the
    /// session is not reaped.
    pub(crate) fn held_until_ms(&self) -> u64 {
        self.holders
            .iter()
            .map(|h| h.lease_until_ms)
            .max()
            .unwrap_or(0)
    }

    /// The earliest lease deadline among the holders, if any: when a waiter
    /// should look again even if nobody wakes it.
    pub(crate) fn next_expiry_ms(&self) -> Option<u64> {
        self.holders
            .iter()
            .map(|h| h.lease_until_ms)
            .filter(|&d| d != NEVER)
            .min()
    }
}

// The `holders` and `waiters` columns: each entry as length-prefixed
// fields (u32 big-endian lengths, u64/i64 big-endian numbers).

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn mode_byte(m: LockMode) -> u8 {
    match m {
        LockMode::Write => b'w',
        LockMode::Read => b'r',
    }
}

fn put_party(out: &mut Vec<u8>, p: &Party) {
    put_bytes(out, p.node.as_bytes());
    put_u64(out, p.instance as u64);
    put_u64(out, p.client);
}

fn put_owner(out: &mut Vec<u8>, o: &Option<Bytes>) {
    match o {
        Some(o) => {
            out.push(1);
            put_bytes(out, o);
        }
        None => out.push(0),
    }
}

pub(crate) fn encode_holders(holders: &[Holder]) -> Vec<u8> {
    let mut out = Vec::new();
    for h in holders {
        put_u64(&mut out, h.key);
        put_u64(&mut out, h.seq);
        out.push(mode_byte(h.mode));
        put_party(&mut out, &h.party);
        put_u64(&mut out, h.lease_until_ms);
        put_owner(&mut out, &h.owner);
    }
    out
}

pub(crate) fn encode_waiters(waiters: &[Waiter]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in waiters {
        put_u64(&mut out, w.seq);
        out.push(mode_byte(w.mode));
        put_party(&mut out, &w.party);
        put_u64(&mut out, w.lease_ms);
        put_owner(&mut out, &w.owner);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u64(&mut self) -> Option<u64> {
        let (n, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*n))
    }
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let (n, rest) = self.0.split_first_chunk::<4>()?;
        let n = u32::from_be_bytes(*n) as usize;
        let b = rest.get(..n)?;
        self.0 = &rest[n..];
        Some(Bytes::copy_from_slice(b))
    }
    fn mode(&mut self) -> Option<LockMode> {
        match self.byte()? {
            b'w' => Some(LockMode::Write),
            b'r' => Some(LockMode::Read),
            _ => None,
        }
    }
    fn party(&mut self) -> Option<Party> {
        let node = String::from_utf8(self.bytes()?.to_vec()).ok()?;
        Some(Party {
            node,
            instance: self.u64()? as i64,
            client: self.u64()?,
        })
    }
    fn owner(&mut self) -> Option<Option<Bytes>> {
        match self.byte()? {
            0 => Some(None),
            1 => Some(Some(self.bytes()?)),
            _ => None,
        }
    }
}

pub(crate) fn decode_holders(b: &[u8]) -> Option<Vec<Holder>> {
    let mut r = Reader(b);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        out.push(Holder {
            key: r.u64()?,
            seq: r.u64()?,
            mode: r.mode()?,
            party: r.party()?,
            lease_until_ms: r.u64()?,
            owner: r.owner()?,
        });
    }
    Some(out)
}

pub(crate) fn decode_waiters(b: &[u8]) -> Option<Vec<Waiter>> {
    let mut r = Reader(b);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        out.push(Waiter {
            seq: r.u64()?,
            mode: r.mode()?,
            party: r.party()?,
            lease_ms: r.u64()?,
            owner: r.owner()?,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(node: &str, client: u64) -> Party {
        Party {
            node: node.into(),
            instance: 7,
            client,
        }
    }

    fn keys() -> impl FnMut(u64) -> u64 {
        let mut next = 100;
        move |above| {
            next = next.max(above + 1);
            next += 1;
            next - 1
        }
    }

    #[test]
    fn writers_queue_in_order_and_readers_share() {
        let mut k = keys();
        let mut l = LockRow::default();
        let a = l.ask(
            LockMode::Write,
            party("a", 1),
            1000,
            None,
            (1, true),
            0,
            &mut k,
        );
        let Asked::Granted(ka) = a else {
            panic!("{a:?}")
        };
        assert_eq!(
            l.ask(
                LockMode::Read,
                party("b", 2),
                1000,
                None,
                (2, true),
                0,
                &mut k
            ),
            Asked::Queued
        );
        assert_eq!(
            l.ask(
                LockMode::Read,
                party("a", 3),
                1000,
                None,
                (3, true),
                0,
                &mut k
            ),
            Asked::Queued
        );
        assert_eq!(
            l.ask(
                LockMode::Write,
                party("b", 4),
                1000,
                None,
                (51, false),
                0,
                &mut k
            ),
            Asked::Busy
        );
        assert!(l.release(ka));
        let handed = l.pump(0, &mut k);
        assert_eq!(handed.len(), 2, "both readers: {handed:?}");
        assert!(handed.iter().all(|h| h.key > ka));
        assert_eq!(l.mode(), Some(LockMode::Read));
    }

    #[test]
    fn a_lapsed_lease_or_a_dead_node_frees_the_lock() {
        let mut k = keys();
        let mut l = LockRow::default();
        l.ask(
            LockMode::Write,
            party("a", 1),
            100,
            None,
            (52, false),
            0,
            &mut k,
        );
        l.ask(
            LockMode::Write,
            party("b", 1),
            1000,
            None,
            (9, true),
            0,
            &mut k,
        );
        assert!(!l.expire(50, &|_| true));
        assert!(l.expire(150, &|_| true));
        assert_eq!(l.pump(150, &mut k).len(), 1);
        assert!(l.expire(200, &|p| p.node != "b"), "b died");
        assert!(l.holders.is_empty() && l.waiters.is_empty());
    }

    #[test]
    fn rows_come_back_as_they_went() {
        let mut k = keys();
        let mut l = LockRow::default();
        l.ask(
            LockMode::Read,
            party("a", 1),
            NEVER,
            Some(Bytes::from("web1|42")),
            (60, false),
            5,
            &mut k,
        );
        l.ask(
            LockMode::Write,
            party("b", 2),
            30,
            None,
            (77, true),
            5,
            &mut k,
        );
        let h = encode_holders(&l.holders);
        let w = encode_waiters(&l.waiters);
        assert_eq!(decode_holders(&h), Some(l.holders.clone()));
        assert_eq!(decode_waiters(&w), Some(l.waiters.clone()));
        assert_eq!(decode_holders(&h[..h.len() - 1]), None);
        assert_eq!(l.held_until_ms(), NEVER);
        assert_eq!(l.next_expiry_ms(), None);
    }
}
