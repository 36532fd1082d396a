//! The sticky-session cookie: `<name>=<generation>.<set>`. The table generation makes
//! a cookie from an earlier rollout stale, so a new rollout decides the client anew.

use http::HeaderMap;
use http::header::{self, HeaderValue};

use crate::table::SetKind;

/// The set the cookie pins, if it was issued for `generation`.
pub(crate) fn read(headers: &HeaderMap, name: &str, generation: u64) -> Option<SetKind> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .find_map(|(_, value)| {
            let (gen_text, set) = value.split_once('.')?;
            (gen_text.parse::<u64>().ok()? == generation)
                .then(|| SetKind::parse(set))
                .flatten()
        })
}

pub(crate) fn set_cookie(name: &str, generation: u64, set: SetKind) -> Option<HeaderValue> {
    HeaderValue::try_from(format!(
        "{name}={generation}.{}; Path=/; HttpOnly; SameSite=Lax",
        set.as_str()
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_a_cookie_of_the_current_generation() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; rampart=7.canary; b=2"),
        );
        assert_eq!(read(&h, "rampart", 7), Some(SetKind::Canary));
        assert_eq!(read(&h, "rampart", 8), None);
        assert_eq!(read(&h, "other", 7), None);
        let issued = set_cookie("rampart", 9, SetKind::Stable).unwrap();
        assert!(issued.to_str().unwrap().starts_with("rampart=9.stable;"));
    }
}
