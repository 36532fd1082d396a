//! The sticky-session cookie: `<name>=<generation>.<set>.<tag>`. The table generation
//! makes a cookie from an earlier rollout stale, so a new rollout decides the client
//! anew. The tag is a keyed hash (SipHash with a random per-process key) of generation
//! and set, so a client cannot write itself a cookie for the set it wants: a cookie
//! only ever repeats what the split decided, and its requests stay the split's.

use std::hash::{BuildHasher, RandomState};

use http::HeaderMap;
use http::header::{self, HeaderValue};

use crate::table::SetKind;

/// Signs and checks cookies; its key lives as long as the router process.
#[derive(Debug, Default)]
pub(crate) struct CookieSigner(RandomState);

impl CookieSigner {
    fn tag(&self, generation: u64, set: SetKind) -> u64 {
        self.0.hash_one((generation, set.as_str()))
    }

    /// The set the cookie pins, if this process issued it for `generation`.
    pub(crate) fn read(&self, headers: &HeaderMap, name: &str, generation: u64) -> Option<SetKind> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(k, _)| *k == name)
            .find_map(|(_, value)| {
                let mut fields = value.splitn(3, '.');
                let issued_for = fields.next()?.parse::<u64>().ok()?;
                let set = SetKind::parse(fields.next()?)?;
                let tag = u64::from_str_radix(fields.next()?, 16).ok()?;
                (issued_for == generation && tag == self.tag(generation, set)).then_some(set)
            })
    }

    pub(crate) fn set_cookie(
        &self,
        name: &str,
        generation: u64,
        set: SetKind,
    ) -> Option<HeaderValue> {
        HeaderValue::try_from(format!(
            "{name}={generation}.{}.{:016x}; Path=/; HttpOnly; SameSite=Lax",
            set.as_str(),
            self.tag(generation, set)
        ))
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie_header(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::try_from(value).unwrap());
        h
    }

    #[test]
    fn reads_only_a_cookie_it_issued_for_the_current_generation() {
        let signer = CookieSigner::default();
        let issued = signer.set_cookie("rampart", 7, SetKind::Canary).unwrap();
        let pair = issued
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let h = cookie_header(&format!("a=1; {pair}; b=2"));
        assert_eq!(signer.read(&h, "rampart", 7), Some(SetKind::Canary));
        assert_eq!(signer.read(&h, "rampart", 8), None);
        assert_eq!(signer.read(&h, "other", 7), None);
        // Another process (another key) does not accept it.
        assert_eq!(CookieSigner::default().read(&h, "rampart", 7), None);
    }

    #[test]
    fn a_client_cannot_write_its_own_cookie() {
        let signer = CookieSigner::default();
        let stable = signer.set_cookie("rampart", 7, SetKind::Stable).unwrap();
        let tag = stable
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap()
            .to_owned();
        for forged in [
            "rampart=7.canary",
            "rampart=7.canary.0",
            &format!("rampart=7.canary.{tag}"),
        ] {
            assert_eq!(
                signer.read(&cookie_header(forged), "rampart", 7),
                None,
                "{forged}"
            );
        }
    }
}
